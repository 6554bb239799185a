"""The scaling verdict: does accuracy depend on size, linearly or not, and what does halving the size cost?

Rule (documented in README "How the verdict is made"):
1. insufficient_data when fewer than MIN_CONFIGS non-collapsed fusion configurations (or fewer than 3 distinct
   sizes) remain, or when at most half of them have 2+ seeds; the fits are still shown, as description.
2. The constant (accuracy independent of size) is tested first: the largest likelihood ratio of any sloped
   form (linear, log-linear, power law at any exponent) against it, calibrated by a parametric bootstrap
   under the fitted constant with its own between-configuration variance. p >= ALPHA: no_relation.
3. Otherwise linear, unless a curved form (log-linear, or a power law not at a parameter bound) has an AICc
   lower than the line's by more than NONLINEAR_MARGIN: then nonlinear. The line is the seed's question, so
   a curve must earn its place; a power law at its exponent's bound never decides.
4. stability: the share of leave-one-configuration-out refits that keep the verdict (below 80%: "fragile").
The curve is model-averaged over the line, the log-linear and the power law (intervals.py); the per-halving
change mixes that average with a local line in log size around the reference size (local_halving), so that it
holds where configurations scatter and the truth is none of the forms.
"""
from __future__ import annotations

import numpy as np

from sweep.analysis import forms, intervals
from sweep.analysis.evidence import Evidence

MIN_CONFIGS = 5
ALPHA = 0.05
LEVEL = 0.90
NONLINEAR_MARGIN = 2.0   # AICc units a curved form must gain over the line (Burnham & Anderson: < 2 = both supported)
CURVE_POINTS = 40


def constant_test(grids: dict, means: np.ndarray, cov: np.ndarray, rng, n_boot: int) -> tuple[float, float]:
    """(p-value, likelihood-ratio statistic) of 'accuracy does not depend on size'."""
    def statistic(m):
        null = forms.fit(grids["constant"], m).neg2_ml
        sloped = np.min([forms.fit(grids[f], m).neg2_ml for f in forms.SLOPED], axis=0)
        return null - sloped

    observed = float(statistic(means)[0])
    null_fit = forms.fit(grids["constant"], means)
    # Null draws: the constant's fit, with the scatter tau drawn for each from the constant's restricted likelihood
    # over the TAUS grid (uniform prior on tau). With 6-12 configurations tau is poorly known and its point
    # estimate often 0; draws at a point estimate that low (or at the best sloped fit's tau, which reads scatter as
    # trend, as before issue 22) made the test too bold where configurations scatter (issue 22's world: 10% false
    # alarms at 5%).
    _, reml = grids["constant"].neg2_loglik(means)
    prior = np.gradient(forms.TAUS)
    posterior = np.exp(-0.5 * (reml[0, 0] - reml[0, 0].min())) * prior
    taus = forms.TAUS[rng.choice(len(forms.TAUS), size=n_boot, p=posterior / posterior.sum())]
    n = len(means)
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(n))
    draws = null_fit.coef[0, 0] + rng.standard_normal((n_boot, n)) @ chol.T + \
        taus[:, None] * rng.standard_normal((n_boot, n))
    exceed = int(np.sum(statistic(draws) >= observed - 1e-9))
    return (1 + exceed) / (1 + n_boot), observed


def sufficiency(evidence: Evidence) -> list[str]:
    """What is missing for a verdict (empty when there is enough)."""
    missing = []
    n = len(evidence.means)
    if n < MIN_CONFIGS:
        missing.append(f"only {n} non-collapsed fusion configuration{'s' * (n != 1)} (need {MIN_CONFIGS})")
    elif len(np.unique(evidence.sizes)) < 3:
        missing.append("fewer than 3 distinct sizes")
    replicated = int(np.sum(evidence.seeds >= 2))
    if n and replicated * 2 <= n:
        missing.append(f"only {replicated} of {n} configurations have 2 or more seeds (need most of them)")
    return missing


def reference_size(evidence: Evidence, seed_size: float | None, at: float | None) -> tuple[float, str]:
    """(size, why): --at, else the seed's fusion, else the median configuration."""
    if at is not None:
        return float(at), "as asked (--at)"
    if seed_size is not None and np.isfinite(seed_size):
        return float(seed_size), "the seed's fusion"
    middle = np.sort(evidence.sizes)[(len(evidence.sizes) - 1) // 2]
    return float(middle), "the median configuration"


def verdict(missing: list[str], p_constant: float | None, fitted: dict) -> tuple[str, str | None]:
    """(verdict, the form that carries it)."""
    if missing or p_constant is None:
        return "insufficient_data", None
    if p_constant >= ALPHA:
        return "no_relation", "constant"
    curved = [f for f in ("log_linear", "power_law") if not fitted[f]["at_bound"] and np.isfinite(fitted[f]["aicc"])]
    best_curved = min(curved, key=lambda f: fitted[f]["aicc"])
    if fitted[best_curved]["aicc"] < fitted["linear"]["aicc"] - NONLINEAR_MARGIN:
        return "nonlinear", best_curved
    return "linear", "linear"


def targets(grids: dict, reference: float, at: float, sizes: np.ndarray) -> dict:
    """Per averaged form (D, 1 + len(sizes), k): the per-halving row, then the curve rows."""
    out = {}
    for form in forms.AVERAGED:
        halving = forms.rows(form, np.array([at / 2, at]) / reference)
        out[form] = np.concatenate([halving[:, :1] - halving[:, 1:], forms.rows(form, sizes / reference)], axis=1)
    return out


def fit_forms(evidence: Evidence, reference: float, rng, n_boot: int, at: float, *, leave_one_out: bool = True) -> dict:
    """Everything the verdict and the report need from the fits: per-form summaries, test, averaged targets."""
    x = evidence.sizes / reference
    grids = {f: forms.build_grid(f, x, evidence.cov) for f in forms.FORMS}
    fitted = {f: summarize(grids[f], evidence.means, reference) for f in forms.FORMS}
    if leave_one_out:
        for form, loo in loo_errors(evidence, reference).items():
            fitted[form]["loo"] = loo
    best = min(v["aicc"] for v in fitted.values())
    weights = intervals.aicc_weights(np.array([fitted[f]["aicc"] for f in forms.FORMS]))
    for form, weight in zip(forms.FORMS, weights):
        judged = np.isfinite(fitted[form]["aicc"])
        fitted[form].update(delta_aicc=fitted[form]["aicc"] - best, weight=float(weight) if judged else None)
    p_constant, statistic = constant_test(grids, evidence.means, evidence.cov, rng, n_boot)
    lo_size, hi_size = min(evidence.sizes.min(), at / 2), max(evidence.sizes.max(), at)
    curve_sizes = np.geomspace(lo_size, hi_size, CURVE_POINTS)
    averaged = intervals.model_averaged(grids, evidence.means, evidence.cov,
                                        targets(grids, reference, at, curve_sizes), rng, n_boot=n_boot, level=LEVEL)
    averaged.update(local_halving(grids, evidence, at, averaged, rng, n_boot))
    return {"forms": fitted, "p_constant": p_constant, "lr_constant": statistic, "averaged": averaged,
            "curve_sizes": curve_sizes}


def verdict_of(evidence: Evidence, reference: float, rng, n_boot: int) -> str:
    """The verdict alone (no intervals, no leave-one-out errors): what a refit without one configuration says."""
    missing = sufficiency(evidence)
    if missing or len(np.unique(evidence.sizes)) < 3:
        return "insufficient_data"
    x = evidence.sizes / reference
    grids = {f: forms.build_grid(f, x, evidence.cov) for f in forms.FORMS}
    fitted = {f: summarize(grids[f], evidence.means, reference) for f in forms.FORMS}
    p_constant, _ = constant_test(grids, evidence.means, evidence.cov, rng, n_boot)
    return verdict(missing, p_constant, fitted)[0]


def stability(evidence: Evidence, reference: float, full_verdict: str, rng, n_boot: int) -> float | None:
    """The share of leave-one-configuration-out refits whose verdict is `full_verdict` (None with < 3 configurations).

    A verdict that one configuration makes or breaks rests on that configuration, not on a trend; with few
    configurations near the test's threshold (p close to ALPHA, or AICc gains close to the margin) it is common."""
    n = len(evidence.means)
    if n < 3:
        return None
    kept = [verdict_of(evidence.subset(np.arange(n) != i), reference, rng, n_boot) == full_verdict for i in range(n)]
    return float(np.mean(kept))


def local_halving(grids: dict, evidence: Evidence, at: float, averaged: dict, rng, n_boot: int) -> dict:
    """The per-halving change as a mixture of the global forms' confidence distribution (model-averaged) and a
    local line in log size around `at` (intervals.local_halving_draws), LOCAL_SHARE each way.

    Configurations scatter around any smooth curve and the truth need be none of the forms (a knee in log size):
    a global form then misplaces the slope at `at`, and its own bootstrap cannot see that. The local fit assumes
    only straightness near `at`; where the two agree the mixture is about as narrow as either, where they do not
    it spans both."""
    tau = best_sloped_tau(grids, evidence.means)
    local, n_local = intervals.local_halving_draws(evidence.sizes, evidence.means, evidence.cov, tau, at, rng, n_boot)
    draws = np.concatenate([averaged["draws"][:, 0], local])
    weights = np.concatenate([averaged["draw_weights"] * (1 - intervals.LOCAL_SHARE),
                              np.full(n_boot, intervals.LOCAL_SHARE / n_boot)])
    lo, median, hi = intervals.weighted_quantiles(draws[:, None], weights, [(1 - LEVEL) / 2, 0.5, (1 + LEVEL) / 2])
    estimate, low, high = (np.concatenate([[v[0]], averaged[k][1:]]) for v, k in
                           ((median, "estimate"), (lo, "lo"), (hi, "hi")))
    return {"estimate": estimate, "lo": low, "hi": high, "local_configs": n_local}


def best_sloped_tau(grids: dict, means: np.ndarray) -> float:
    """The between-configuration sd (fraction) of the sloped form that fits best by likelihood."""
    sloped_fits = [forms.fit(grids[f], means) for f in forms.SLOPED]
    return float(forms.TAUS[int(min(sloped_fits, key=lambda fit: fit.neg2_ml[0]).t[0])])


def summarize(grid: forms.Grid, means: np.ndarray, reference: float) -> dict:
    """One form's fit in the contract's words: AICc, bound flag, parameters in accuracy points."""
    fit = forms.fit(grid, means)
    d, coef = int(fit.d[0]), fit.coef[0] * 100
    b = float(forms.exponents_of(grid.form)[d])
    params = {"constant": lambda: {"accuracy": coef[0]},
              "linear": lambda: {"intercept": coef[0], "slope_per_million": coef[1] / reference * 1e6},
              "log_linear": lambda: {"at_reference": coef[0], "per_doubling": coef[1] * np.log(2),
                                     "reference_size": reference},
              "power_law": lambda: {"floor": 100 - coef[0], "a": coef[1] * reference ** b, "b": b},
              }[grid.form]()
    return {"aicc": float(fit.aicc[0]), "loo": None, "at_bound": forms.at_bound(grid, d),
            "params": {k: float(v) for k, v in params.items()},
            "between_config_sd": float(100 * forms.TAUS[int(fit.t[0])])}


def loo_errors(evidence: Evidence, reference: float) -> dict:
    """Root-mean-square error (points) of predicting each configuration from the others, per form."""
    n = len(evidence.means)
    errors = {f: [] for f in forms.FORMS}
    for left_out in range(n):
        keep = np.arange(n) != left_out
        x = evidence.sizes[keep] / reference
        cov = evidence.cov[np.ix_(keep, keep)]
        for form in forms.FORMS:
            grid = forms.build_grid(form, x, cov)
            fit = forms.fit(grid, evidence.means[keep])
            row = forms.rows(form, evidence.sizes[left_out:left_out + 1] / reference)[int(fit.d[0]), 0]
            errors[form].append(float(row @ fit.coef[0]) - evidence.means[left_out])
    return {f: float(100 * np.sqrt(np.mean(np.square(e)))) if n > 2 else None for f, e in errors.items()}
