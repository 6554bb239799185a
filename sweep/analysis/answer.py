"""The analyze object of the results contract (what `fusion-sweep analyze --json` writes and scaling.json holds).

From a trials table (and per-image predictions when there are any) for one split and one size axis: the
verdict and its sentence, the forms' fits, the per-halving change at a reference size with its interval, the
fitted band, and the table of configurations not distinguishable from the best.
"""
from __future__ import annotations

import math

import numpy as np

from sweep.analysis import compare, evidence, inputs, scaling
from sweep.configs.naming import config_label, is_seed_fusion
from sweep.files import json_safe

PRIMARY = ("params", "test")   # the one primary question: test accuracy against parameters; the rest are secondary
FRAGILE = 0.8                   # a verdict fewer leave-one-configuration-out refits keep is fragile
AXIS_WORDS = {"params": "parameters", "flops": "FLOPs", "latency_ms": "latency"}
FORM_WORDS = {"constant": "a constant", "linear": "a line in size", "log_linear": "a line in log size",
              "power_law": "a saturating power law"}


def analyze(trials, predictions=None, *, size: str = "params", split: str = "test", at: float | None = None,
            seed: int = 0, n_boot: int = 1000, leave_one_out: bool = True, stability: bool = True) -> dict:
    """The analyze object; raises inputs.InputError on input that cannot be analysed."""
    if at is not None and not (math.isfinite(at) and at > 0):
        raise inputs.InputError(f"--at must be a positive size, got {at!r}")
    trial_set = inputs.select(trials, predictions, size, split)
    every = evidence.build(trial_set, size)
    if not len(every.means):
        raise inputs.InputError(f"trials.csv: no trial that counts has a positive {size}")
    labels = [config_label(c) for c in every.configs]
    is_fusion = np.array([c["model"] == "fusion" for c in every.configs])
    fusion = every.subset(is_fusion) if is_fusion.any() else every
    rng = np.random.default_rng(seed)
    result = {"size": size, "split": split, "primary": size == PRIMARY[0] and split == PRIMARY[1],
              **_counts(trial_set, fusion, is_fusion.any())}
    result.update(_scaling(fusion, _seed_size(trial_set, size), at, rng, n_boot, leave_one_out, stability))
    result["verdict_text"] = sentence(result, trial_set.split, per_image=fusion.per_image)
    result["against_best"] = compare.against_best(every, labels)
    result["per_image"] = bool(every.per_image)
    result["collapse_source"] = trial_set.collapse_source
    return json_safe(result)


def _counts(trial_set, fusion, has_fusion: bool) -> dict:
    rows = trial_set.rows
    in_fit = rows["model"].eq("fusion") if has_fusion else rows["model"].notna()
    collapsed = trial_set.collapsed
    collapsed = collapsed[collapsed["model"].eq("fusion")] if has_fusion else collapsed
    return {"n_configs": int(len(fusion.means)), "n_trials": int(sum(len(t) for t in fusion.trial_ids)),
            "n_collapsed": int(len(collapsed)), "collapsed_trials": collapsed["trial_id"].tolist(),
            "failed_trials": [t for t in trial_set.failed if t in set(rows.loc[in_fit, "trial_id"])],
            "seeds": {"min": int(fusion.seeds.min()) if len(fusion.seeds) else 0,
                      "max": int(fusion.seeds.max()) if len(fusion.seeds) else 0}}


def _seed_size(trial_set, size: str) -> float | None:
    rows = trial_set.rows
    match = [is_seed_fusion(row) for row in rows.to_dict("records")]
    sizes = rows.loc[match, size].astype(float)
    return float(sizes.mean()) if sizes.notna().any() else None


def _scaling(fusion, seed_size, at, rng, n_boot: int, leave_one_out: bool, stable: bool) -> dict:
    missing = scaling.sufficiency(fusion)
    empty_halving = {"at": None, "estimate": None, "lo": None, "hi": None, "level": scaling.LEVEL}
    out = {"missing": missing, "forms": {}, "best_form": None, "carrier": None, "p_constant": None,
           "per_halving": empty_halving, "curve": [], "stability": None}
    if len(np.unique(fusion.sizes)) < 3:
        out["verdict"] = "insufficient_data"
        return out
    reference, why = scaling.reference_size(fusion, seed_size, at)
    geometric = float(np.exp(np.mean(np.log(fusion.sizes))))
    fitted = scaling.fit_forms(fusion, geometric, rng, n_boot, reference, leave_one_out=leave_one_out)
    averaged = fitted["averaged"]
    out["forms"] = fitted["forms"]
    eligible = {f: v for f, v in fitted["forms"].items() if not v["at_bound"]}
    out["best_form"] = min(eligible, key=lambda f: eligible[f]["aicc"])
    out["p_constant"] = fitted["p_constant"]
    out["verdict"], out["carrier"] = scaling.verdict(missing, fitted["p_constant"], fitted["forms"])
    if stable and not missing:
        out["stability"] = scaling.stability(fusion, geometric, out["verdict"], rng, max(200, n_boot // 4))
    # Intervals are cut to what is possible (a change within +-100 points, an accuracy within 0-100): the truth
    # lies there, so coverage is kept, and a descriptive fit to 3 points no longer reads "-932 points".
    change = np.clip(100 * np.array([averaged[k][0] for k in ("estimate", "lo", "hi")]), -100, 100)
    out["per_halving"] = {"at": reference, "at_is": why, **dict(zip(("estimate", "lo", "hi"), change.tolist())),
                          "level": scaling.LEVEL}
    out["averaging_weights"] = averaged["weights"]
    band = np.clip(100 * np.stack([averaged[k][1:] for k in ("estimate", "lo", "hi")]), 0, 100)
    out["curve"] = [{"size": float(s), "estimate": e, "lo": lo, "hi": hi}
                    for s, e, lo, hi in zip(fitted["curve_sizes"], *band.tolist())]
    return out


def _size_text(value: float, size: str) -> str:
    if size == "latency_ms":
        return f"{value:.3g} ms of latency"
    return f"{value:,.0f} {AXIS_WORDS[size]}"


def sentence(result: dict, split: str, *, per_image: bool) -> str:
    """The verdict in one sentence, with its interval and what it rests on."""
    size, verdict = result["size"], result["verdict"]
    what = f"{split} accuracy" if split == "test" else f"accuracy on {split}"
    seeds = result["seeds"]
    seed_text = f"{seeds['min']}-{seeds['max']} seeds" if seeds["min"] != seeds["max"] else \
        f"{seeds['max']} seed{'s' * (seeds['max'] != 1)} each"
    basis = f"{result['n_configs']} fusion configurations x {seed_text}"
    if result["n_collapsed"]:
        basis += f", {result['n_collapsed']} collapsed trial{'s' * (result['n_collapsed'] != 1)} left out"
    if not per_image:
        basis += "; no per-image predictions, so the shared test images could not be modelled"
    halving = result["per_halving"]
    change = ""
    if halving["estimate"] is not None:
        change = (f"halving the size at {_size_text(halving['at'], size)} ({halving['at_is']}) changes {what} by "
                  f"{halving['estimate']:+.1f} points ({halving['level']:.0%} interval {halving['lo']:+.1f} to "
                  f"{halving['hi']:+.1f})")
    if verdict == "insufficient_data":
        text = f"Insufficient data for a verdict on {what} against {AXIS_WORDS[size]}: " + "; ".join(result["missing"])
        return text + (f" ({basis}). Descriptive only: {change}." if change else f" ({basis}).")
    p = result["p_constant"]
    if verdict == "no_relation":
        head = (f"No relation between {what} and {AXIS_WORDS[size]} could be shown (a constant is not rejected, "
                f"p = {p:.2f})")
    else:
        fits = result["forms"]
        if verdict == "linear":
            how = "linearly: a constant is rejected (p = {p:.3f}) and no curve beats a line by more than 2 AICc"
        else:
            gain = fits["linear"]["aicc"] - fits[result["carrier"]]["aicc"]
            how = f"nonlinearly: a constant is rejected (p = {{p:.3f}}) and {FORM_WORDS[result['carrier']]} " \
                  f"beats a line by {gain:.1f} AICc"
        head = f"{what.capitalize()} depends on {AXIS_WORDS[size]}, " + how.format(p=p)
    return f"{head}, over {basis}: {change}." + _stability_text(result)


def _stability_text(result: dict) -> str:
    share, n = result.get("stability"), result.get("n_configs") or 0
    if share is None:
        return ""
    kept = int(round(share * n))
    if share < FRAGILE:
        return (f" The verdict is fragile: only {kept} of {n} refits leaving one configuration out keep it "
                f"(one configuration can make or break it).")
    return f" {kept} of {n} refits leaving one configuration out keep this verdict."


def label_family(objects: dict) -> dict:
    """Mark the primary analysis (params on test) and give every secondary one (other size axes, external splits)
    a Holm-adjusted p of its constant test over all the secondaries (`p_holm`; the primary's is its own p), with
    a sentence saying so. objects: {split: {size: analyze object}} (scaling.json), changed in place and returned."""
    from sweep.analysis.compare import holm

    secondary = [(split, size) for split, axes in objects.items() for size, result in axes.items()
                 if not result.get("primary") and result.get("p_constant") is not None]
    adjusted = holm(np.array([objects[sp][sz]["p_constant"] for sp, sz in secondary])) if secondary else []
    for (split, size), p in zip(secondary, adjusted):
        result = objects[split][size]
        result["p_holm"] = float(p)
        result["verdict_text"] += (f" Secondary analysis: Holm-adjusted p = {p:.3f} over the {len(secondary)} "
                                   "secondary analyses" + (" (the trend does not survive the adjustment)."
                                                          if result["verdict"] in ("linear", "nonlinear") and
                                                          p >= scaling.ALPHA else "."))
    for axes in objects.values():
        for result in axes.values():
            if result.get("primary"):
                result["p_holm"] = result.get("p_constant")
    return objects
