"""Intervals that carry patient and seed noise, the between-configuration scatter and doubt about the form.

Each sloped form gets a confidence distribution for its targets (the per-halving change, the curve) from a
studentized parametric bootstrap: replicates of the configuration means are drawn from the form's fit with
the full covariance Sigma + tau^2 I (patients shared by every configuration, seeds, configurations off the
curve), the form is refitted to each (exponent and tau included), and the errors, divided by their standard
errors, give the distribution of the pivot. The forms' distributions are then mixed with AICc weights (a
model-averaged tail-area interval, Turek & Fletcher 2012), so that where the data cannot tell a log-linear
from a saturating curve the interval spans both. For the per-halving change a local line in log size around
the reference size (local_halving_draws) joins the mix: every global form misplaces the slope of a truth that
none of them is (a knee in log size), and its own bootstrap cannot see it.
"""
from __future__ import annotations

import numpy as np

from sweep.analysis import forms

LOCAL_WINDOW = 1.2    # ln-size half-width of the local fit (about half a decade each way)
LOCAL_MIN = 3         # configurations the local fit takes at least
LOCAL_SHARE = 0.5     # the local fit's share of the per-halving mixture; the global forms share the rest


def form_draws(grid: forms.Grid, means, cov, target, rng, n_boot: int):
    """(draws (n_boot, R), AICc, AIC) of one form's targets target (D, R, k)."""
    observed = forms.fit(grid, means)
    estimate, se = forms.values(grid, observed, target)
    d, t = int(observed.d[0]), int(observed.t[0])
    fitted = grid.designs[d] @ observed.coef[0]
    n = len(means)
    noise = rng.standard_normal((n_boot, n)) @ np.linalg.cholesky(cov + 1e-12 * np.eye(n)).T
    noise += forms.TAUS[t] * rng.standard_normal((n_boot, n))
    replicates = forms.fit(grid, fitted + noise)
    estimate_star, se_star = forms.values(grid, replicates, target)
    truth = target[d] @ observed.coef[0]
    pivots = (estimate_star - truth) / se_star
    aic = float(observed.neg2_ml[0]) + 2 * (grid.n_params + 1)
    return estimate[0] - pivots * se[0], float(observed.aicc[0]), aic


def aicc_weights(aiccs: np.ndarray) -> np.ndarray:
    """Akaike weights; equal weights when no criterion is finite (too few configurations to judge any form)."""
    aiccs = np.asarray(aiccs, float)
    finite = np.isfinite(aiccs)
    if not finite.any():
        return np.full(len(aiccs), 1 / len(aiccs))
    weights = np.where(finite, np.exp(-0.5 * (aiccs - np.min(aiccs[finite]))), 0.0)
    return weights / weights.sum()


def weighted_quantiles(draws: np.ndarray, weights: np.ndarray, qs) -> np.ndarray:
    """(len(qs), R) quantiles of weighted draws (N, R), column by column."""
    order = np.argsort(draws, axis=0)
    out = np.empty((len(qs), draws.shape[1]))
    for r in range(draws.shape[1]):
        w = weights[order[:, r]]
        mid = np.cumsum(w) - w / 2
        out[:, r] = np.interp(qs, mid / w.sum(), draws[order[:, r], r])
    return out


def model_averaged(grids: dict, means, cov, targets: dict, rng, *, n_boot: int = 1000, level: float = 0.9) -> dict:
    """Estimate (median) and level interval of each target row, mixing forms.AVERAGED by AICc weight."""
    draws, aiccs, aics = [], [], []
    for form in forms.AVERAGED:
        form_draw, form_aicc, form_aic = form_draws(grids[form], means, cov, targets[form], rng, n_boot)
        draws.append(form_draw)
        aiccs.append(form_aicc)
        aics.append(form_aic)
    # too few configurations for any AICc (descriptive fits only): weigh by AIC instead
    weights = aicc_weights(np.array(aiccs) if np.isfinite(aiccs).any() else np.array(aics))
    pooled = np.concatenate(draws)
    draw_weights = np.repeat(weights / n_boot, n_boot)
    lo, median, hi = weighted_quantiles(pooled, draw_weights, [(1 - level) / 2, 0.5, (1 + level) / 2])
    return {"estimate": median, "lo": lo, "hi": hi, "weights": dict(zip(forms.AVERAGED, weights.tolist())),
            "draws": pooled, "draw_weights": draw_weights}


def local_halving_draws(sizes, means, cov, tau: float, at: float, rng, n_boot: int) -> tuple[np.ndarray, int]:
    """(draws (n_boot,), configurations used) of the per-halving change from a line in log size fitted by GLS
    (covariance cov + tau^2 I) to the configurations within LOCAL_WINDOW of `at` in ln size (the LOCAL_MIN
    nearest when fewer are): an estimate that assumes no global form, only that accuracy is about straight in log
    size near `at`. Its confidence distribution is Student t with the sweep's residual degrees of freedom."""
    u = np.log(np.asarray(sizes, float) / at)
    near = np.abs(u) <= LOCAL_WINDOW
    if near.sum() < LOCAL_MIN or len(np.unique(u[near])) < 2:
        near = np.zeros(len(u), bool)
        near[np.argsort(np.abs(u), kind="stable")[:LOCAL_MIN]] = True
    x = np.stack([np.ones(near.sum()), u[near]], axis=1)
    v = cov[np.ix_(near, near)] + tau ** 2 * np.eye(near.sum())
    v_inv = np.linalg.inv(v + 1e-12 * np.eye(len(v)))
    g_inv = np.linalg.inv(x.T @ v_inv @ x)
    slope = (g_inv @ x.T @ v_inv @ np.asarray(means)[near])[1]
    se = np.sqrt(max(g_inv[1, 1], 1e-30))
    df = max(len(u) - 3, 2)
    return -np.log(2) * (slope + se * rng.standard_t(df, n_boot)), int(near.sum())
