"""Markdown of analyze objects for report.md: the best-configurations table, the collapsed trials, the forms."""
from __future__ import annotations

FORM_NAMES = {"constant": "constant (no relation)", "linear": "linear in size", "log_linear": "linear in log size",
              "power_law": "saturating power law (error = floor + a·N^-b)"}


def _num(value, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def best_table(result: dict) -> list[str]:
    """Configurations not distinguishable from the best, then how many are worse, as markdown lines."""
    rows = result["against_best"]
    kept = [r for r in rows if not r["distinguishable"]]
    lines = ["| configuration | seeds | accuracy | 90% interval | below the best | 90% interval of the gap | Holm p |",
             "|---|---:|---:|---|---:|---|---:|"]
    for r in kept:
        gap = "best" if r["best"] else _num(r["gap"])
        gap_ci = "" if r["best"] else f"{_num(r['gap_lo'])} to {_num(r['gap_hi'])}"
        # one seed (or one configuration) gives no interval: a dash, not a crash
        lines.append(f"| {r['config']} | {r['seeds']} | {_num(r['accuracy'])} | {_num(r['lo'])} to {_num(r['hi'])} | "
                     f"{gap} | {gap_ci} | {_num(r['p_holm'], '.2f')} |")
    worse = len(rows) - len(kept)
    lines += ["", f"{len(kept)} of {len(rows)} configurations are not distinguishable from the best (one-sided "
              f"test on the same test images, Holm-corrected at 5%); {worse} {'is' if worse == 1 else 'are'} worse."]
    return lines


def collapsed_lines(result: dict, trials) -> list[str]:
    """The collapsed trials (one class takes > 98% of test predictions), named, or a line saying there are none."""
    ids = result.get("collapsed_trials") or []
    all_collapsed = trials[trials["collapsed"]]["trial_id"].astype(str).tolist() if "collapsed" in trials else ids
    if not all_collapsed:
        return ["No trial collapsed to one class."]
    source = {"predictions": "from predictions.parquet", "trials.csv": "from trials.csv's `collapsed` column",
              "recalls": "from the per-class recalls"}.get(result.get("collapse_source"), "")
    lines = [f"Collapsed trials (one class takes more than 98% of the test predictions, {source}); drawn hollow, "
             f"left out of the fits and the table above:", ""]
    for _, row in trials[trials["trial_id"].astype(str).isin(all_collapsed)].iterrows():
        lines.append(f"- `{row['trial_id']}` {row['label']} seed {row['seed']}: test accuracy "
                     f"{100 * row['test_accuracy']:.1f}")
    return lines


def forms_table(result: dict) -> list[str]:
    """The fitted forms against one size axis: AICc, leave-one-out error, between-configuration sd, bound."""
    if not result["forms"]:
        return ["No fits: fewer than 3 distinct sizes."]
    weights = result.get("averaging_weights") or {}
    lines = ["| form | ΔAICc | leave-one-out RMSE (points) | between-config sd (points) | at a bound | weight in the average |",
             "|---|---:|---:|---:|---|---:|"]
    for form, fit in result["forms"].items():
        lines.append(f"| {FORM_NAMES[form]} | {_num(fit['delta_aicc'])} | {_num(fit['loo'], '.2f')} | "
                     f"{_num(fit['between_config_sd'], '.2f')} | {'yes' if fit['at_bound'] else 'no'} | "
                     f"{_num(weights.get(form), '.2f') if form in weights else '–'} |")
    return lines


def method_lines() -> list[str]:
    """How the verdict and its interval are made, in a paragraph."""
    return ["How this is decided: each configuration's mean accuracy over its non-collapsed seeds is one point; the "
            "points are correlated (every trial sees the same test patients) and noisy (seeds), with a covariance "
            "estimated from the per-image predictions with patients as the unit (films of one patient are not "
            "independent), and configurations may sit off any smooth curve (a between-configuration variance). A "
            "constant, a line, a line in log size and a saturating power law are fitted by generalised least "
            "squares. The constant is tested first (likelihood ratio against every sloped form, parametric "
            "bootstrap with the scatter drawn from its likelihood, 5%); if it stands the verdict is no_relation, "
            "otherwise linear unless a curve beats the line by more than 2 AICc (a power law at its exponent's bound "
            "never decides). The band mixes the line's, the log-linear's and the power law's studentized "
            "parametric-bootstrap confidence distributions by AICc weight; the per-halving change mixes that with "
            "a local line in log size around the reference size, half and half, so that it holds when the truth is "
            "none of the forms. Stability is the share of refits leaving one configuration out that keep the "
            "verdict (below 80%: fragile). Simulated sweeps shaped like real ones check all of it "
            "(docs/calibration.md)."]
