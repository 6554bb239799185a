"""The scaling question: fits of test error against model size, their comparison, and the answer in words."""
from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Callable

import numpy as np
from scipy import stats
from scipy.optimize import OptimizeWarning, curve_fit, nnls

from models.cuts import cumulative_params, infer_shapes
from models.graphs import cnn_graph, head_graph, resnet50v2_graph
from sweep.analysis.tables import by_configuration

FORMS = ("linear", "log", "power")
FORM_WORDS = {"linear": "linear in N (err = c0 + c1*N)", "log": "linear in log N (err = c0 + c1*ln N)",
              "power": "saturating power law (err = e_inf + a*N^-b)"}


# ---------------------------------------------------------------- fits

@dataclasses.dataclass
class Fit:
    form: str
    params: np.ndarray
    rss: float
    n: int
    k: int
    predict: Callable[[np.ndarray], np.ndarray]

    @property
    def aic(self) -> float:
        return self.n * math.log(max(self.rss, 1e-300) / self.n) + 2 * self.k


def fit_form(form: str, size: np.ndarray, err: np.ndarray) -> Fit:
    """Least-squares fit of err(size) in one form. Sizes are scaled by their geometric mean for stability."""
    size, err = np.asarray(size, float), np.asarray(err, float)
    ref = float(np.exp(np.mean(np.log(size))))
    x = size / ref
    if form == "linear":
        coef = np.polyfit(x, err, 1)
        predict = lambda n, c=coef: np.polyval(c, np.asarray(n, float) / ref)
        params, k = np.array([coef[1], coef[0] / ref]), 2
    elif form == "log":
        coef = np.polyfit(np.log(x), err, 1)
        predict = lambda n, c=coef: np.polyval(c, np.log(np.asarray(n, float) / ref))
        params, k = np.array([coef[1], coef[0]]), 2
    elif form == "power":
        popt = _fit_power(x, err)
        predict = lambda n, p=popt: p[0] + p[1] * np.power(np.asarray(n, float) / ref, -p[2])
        # a is reported in unscaled units: err = e_inf + a' * N^-b with a' = a * ref^b
        params, k = np.array([popt[0], popt[1] * ref ** popt[2], popt[2]]), 3
    else:
        raise ValueError(f"unknown fit form {form!r}; choose from {FORMS}")
    rss = float(np.sum((predict(size) - err) ** 2))
    return Fit(form, params, rss, len(size), k, predict)


def _fit_power(x: np.ndarray, err: np.ndarray) -> np.ndarray:
    """err = e_inf + a*x^-b with e_inf in [0,1], a >= 0, b in [0,4]: a grid over b (for each b the rest is a
    non-negative linear least-squares problem) gives the start, scipy's curve_fit with bounds refines it."""
    best = None
    for b in np.linspace(0.0, 4.0, 81):
        design = np.stack([np.ones_like(x), np.power(x, -b)], axis=1)
        coef, residual = nnls(design, err)
        if best is None or residual < best[0]:
            best = (residual, coef[0], coef[1], b)
    _, e_inf, a, b = best
    p0 = (min(max(e_inf, 0.0), 1.0), max(a, 1e-9), min(max(b, 1e-3), 3.999))

    def f(x, e_inf, a, b):
        return e_inf + a * np.power(x, -b)

    def jac(x, e_inf, a, b):
        xb = np.power(x, -b)
        return np.stack([np.ones_like(x), xb, -a * xb * np.log(x)], axis=1)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, _ = curve_fit(f, x, err, p0=p0, jac=jac, bounds=([0.0, 0.0, 0.0], [1.0, np.inf, 4.0]),
                                maxfev=2000)
    except (RuntimeError, ValueError):
        popt = np.array(p0)
    if np.sum((f(x, *popt) - err) ** 2) > np.sum((f(x, *p0) - err) ** 2):
        popt = np.array(p0)
    return np.asarray(popt, float)


def loo_rmse(form: str, size: np.ndarray, err: np.ndarray) -> float:
    """Leave-one-configuration-out prediction error (RMSE) of a form."""
    size, err = np.asarray(size, float), np.asarray(err, float)
    residuals = []
    for i in range(len(size)):
        mask = np.arange(len(size)) != i
        residuals.append(float(fit_form(form, size[mask], err[mask]).predict(size[i:i + 1])[0] - err[i]))
    return float(np.sqrt(np.mean(np.square(residuals))))


def lack_of_fit_pvalue(fit: Fit, groups: list[np.ndarray], size: np.ndarray) -> float | None:
    """Lack-of-fit F-test of a fitted form against the seed-to-seed (pure) error; None without replicates."""
    n_total = sum(len(g) for g in groups)
    pure = sum(float(np.sum((g - g.mean()) ** 2)) for g in groups)
    df_pure = n_total - len(groups)
    df_lof = len(groups) - fit.k
    if df_pure < 1 or df_lof < 1 or pure <= 0:
        return None
    pred = fit.predict(size)
    lof = sum(len(g) * float((g.mean() - p) ** 2) for g, p in zip(groups, pred))
    f_stat = (lof / df_lof) / (pure / df_pure)
    return float(stats.f.sf(f_stat, df_lof, df_pure))


def _groups(trials, size: str, quality: str) -> tuple[np.ndarray, list[np.ndarray]]:
    done = trials[trials[quality].notna() & trials[size].notna()]
    if (done["model"] == "fusion").sum() >= 4:  # the question is about fusions; parents are reference points
        done = done[done["model"] == "fusion"]
    sizes, groups = [], []
    for group in by_configuration(done):
        sizes.append(float(group[size].mean()))
        groups.append(1.0 - group[quality].to_numpy(float))
    return np.array(sizes), groups


def halving_change(fit: Fit, at: float) -> float:
    """Expected change in ACCURACY when size goes from `at` to `at`/2 (negative: accuracy drops)."""
    return float(-(fit.predict(np.array([at / 2]))[0] - fit.predict(np.array([at]))[0]))


def scaling_fits(trials, size: str = "params", quality: str = "test_accuracy", *, reference_size: float | None = None,
                 bootstrap: int = 200, seed: int = 0) -> dict:
    """Fit the three forms of error vs `size` on per-configuration means; compare by AIC and leave-one-out error;
    bootstrap (resampling seeds within configurations) 95% intervals for parameters and the halving effect."""
    sizes, groups = _groups(trials, size, quality)
    result: dict = {"size": size, "quality": quality, "configs": int(len(sizes)),
                    "trials": int(sum(len(g) for g in groups)), "forms": {}}
    if len(sizes) < 4 or len(np.unique(sizes)) < 3:
        result["note"] = f"too few configurations with distinct {size} to fit ({len(sizes)}); need at least 4"
        return result
    means = np.array([g.mean() for g in groups])
    reference = float(reference_size) if reference_size else float(np.exp(np.mean(np.log(sizes))))
    result["reference_size"] = reference
    fits = {form: fit_form(form, sizes, means) for form in FORMS}
    aics = {form: fit.aic for form, fit in fits.items()}
    best_aic = min(aics.values())
    rng = np.random.default_rng(seed)
    boot = {form: {"params": [], "halving": []} for form in FORMS}
    linear_best_count = 0
    replicated = any(len(g) > 1 for g in groups)
    for _ in range(bootstrap if replicated else 0):
        resampled = np.array([rng.choice(g, size=len(g), replace=True).mean() for g in groups])
        b_fits = {form: fit_form(form, sizes, resampled) for form in FORMS}
        linear_best_count += min(b_fits, key=lambda f: b_fits[f].aic) == "linear"
        for form, fit in b_fits.items():
            boot[form]["params"].append(fit.params)
            boot[form]["halving"].append(halving_change(fit, reference))
    for form, fit in fits.items():
        entry = {"params": fit.params.tolist(), "rss": fit.rss, "aic": fit.aic, "delta_aic": fit.aic - best_aic,
                 "loo_rmse": loo_rmse(form, sizes, means), "halving_accuracy_change": halving_change(fit, reference),
                 "lack_of_fit_p": lack_of_fit_pvalue(fit, groups, sizes)}
        if boot[form]["params"]:
            params = np.array(boot[form]["params"])
            entry["params_ci95"] = np.percentile(params, [2.5, 97.5], axis=0).T.tolist()
            entry["halving_ci95"] = np.percentile(boot[form]["halving"], [2.5, 97.5]).tolist()
        result["forms"][form] = entry
    result["best_by_aic"] = min(aics, key=aics.get)
    loo = {form: result["forms"][form]["loo_rmse"] for form in FORMS}
    result["best_by_loo"] = min(loo, key=loo.get)
    result["bootstrap"] = bootstrap if replicated else 0
    result["linear_best_fraction"] = linear_best_count / bootstrap if replicated and bootstrap else None
    result["linear_verdict"] = _linear_verdict(result)
    return result


def _linear_verdict(result: dict) -> str:
    linear = result["forms"]["linear"]
    delta, p = linear["delta_aic"], linear["lack_of_fit_p"]
    beaten_loo = result["best_by_loo"] != "linear"
    if delta > 10 or (delta > 2 and beaten_loo and p is not None and p < 0.01):
        return "rejected"
    if delta > 2 or (beaten_loo and result["best_by_aic"] != "linear"):
        return "disfavoured"
    return "not rejected"


# ---------------------------------------------------------------- parents: head vs backbone

def head_fractions(image_size: int = 256, channels: int = 3, num_classes: int = 2) -> dict[str, dict]:
    """How much of each parent's parameter count sits in its Flatten/Dense head, counted from the models' graphs."""
    out = {}
    for model, graph, backbone_end in (("cnn", cnn_graph(num_classes), "block5_drop"),
                                       ("resnet50v2", resnet50v2_graph() + head_graph("flatten", num_classes),
                                        "post_relu")):
        shapes = infer_shapes(graph, image_size, channels, model)
        total, _ = cumulative_params(graph, shapes, "predictions", channels)
        backbone, _ = cumulative_params(graph, shapes, backbone_end, channels)
        out[model] = {"params": total, "backbone": backbone, "head": total - backbone,
                      "head_fraction": 1 - backbone / total}
    return out


# ---------------------------------------------------------------- words

def describe(fits: dict, size_words: str = "parameters") -> str:
    """The scaling answer in plain words (markdown), from scaling_fits' result."""
    if "note" in fits:
        return f"Not enough data to fit error against {size_words}: {fits['note']}."
    forms, best = fits["forms"], fits["best_by_aic"]
    lines = [f"Fitted test error of the fusion models against {size_words} over {fits['configs']} configurations "
             f"({fits['trials']} trials):", "",
             "| form | AIC | ΔAIC | leave-one-out RMSE | lack-of-fit p | accuracy change per halving |",
             "|---|---|---|---|---|---|"]
    for form in FORMS:
        e = forms[form]
        ci = e.get("halving_ci95")
        halving = f"{e['halving_accuracy_change'] * 100:+.2f} pts" + (
            f" [{ci[0] * 100:+.2f}, {ci[1] * 100:+.2f}]" if ci else "")
        p = "n/a" if e["lack_of_fit_p"] is None else f"{e['lack_of_fit_p']:.3g}"
        lines.append(f"| {FORM_WORDS[form]} | {e['aic']:.1f} | {e['delta_aic']:.1f} | {e['loo_rmse']:.4f} | {p} | {halving} |")
    lines.append("")
    verdict = fits["linear_verdict"]
    linear = forms["linear"]
    reason = f"its AIC is {linear['delta_aic']:.1f} above the best form's"
    if linear["lack_of_fit_p"] is not None:
        reason += f" and the lack-of-fit test against seed-to-seed noise gives p = {linear['lack_of_fit_p']:.3g}"
    if fits.get("linear_best_fraction") is not None:
        reason += f"; linear was the best form in {fits['linear_best_fraction'] * 100:.0f}% of {fits['bootstrap']} bootstrap resamples"
    lines.append(f"- **Is the relation linear?** A linear relation in {size_words} is **{verdict}** ({reason}).")
    p_values = [forms[f]["lack_of_fit_p"] for f in FORMS]
    if all(p is not None and p < 0.01 for p in p_values):
        lines.append("- No form fits within seed-to-seed noise (lack-of-fit p < 0.01 for all three): configurations "
                     "of similar size differ by more than size explains (where the cut is matters, not only how big).")
    agree = "and" if fits["best_by_loo"] == best else f"while leave-one-out error prefers the {FORM_WORDS[fits['best_by_loo']]};"
    lines.append(f"- **Best form:** by AIC the {FORM_WORDS[best]}, {agree} "
                 f"leave-one-out RMSE {forms[best]['loo_rmse']:.4f}.")
    if best == "power":
        e_inf, a, b = forms["power"]["params"]
        ci = forms["power"].get("params_ci95")
        bci = f" (95% CI {ci[2][0]:.2f}-{ci[2][1]:.2f})" if ci else ""
        lines.append(f"- Power law: err = {e_inf:.3f} + {a:.3g}·N^-{b:.2f}{bci}; error floor e_inf = {e_inf:.3f}.")
    e = forms[best]
    ci = e.get("halving_ci95")
    ci_text = f" (95% bootstrap interval {ci[0] * 100:+.2f} to {ci[1] * 100:+.2f} points)" if ci else \
        " (one seed per configuration: no interval; run with --seeds 3 for one)"
    lines.append(f"- **Halving the size** near {fits['reference_size']:,.0f} {size_words} changes expected test "
                 f"accuracy by {e['halving_accuracy_change'] * 100:+.2f} points{ci_text}.")
    return "\n".join(lines)
