"""Partial effects: each one-factor neighbour of a reference configuration against it, paired on the same patients.

The seed asked whether "a little more or less of either parent" changes accuracy. With a reference configuration
and neighbours that differ from it in one factor (a parent's cut, a width), that is a difference of two accuracies
measured on the same test images: delta = neighbour minus reference, each the mean over its non-collapsed seeds.
Its interval is a cluster bootstrap: each draw resamples test PATIENTS (one set of weights for every
configuration, so the comparison stays paired) and, within each configuration, its seeds. The draws' spread is the
standard error; the interval is delta -/+ z * se and the p-value 2 * Phi(-|delta| / se), Holm-adjusted over the
family of effects (docs/effects.md: the method and its calibration in simulated star designs).
"""
from __future__ import annotations

import math

import numpy as np

from sweep import UsageError
from sweep.analysis.clusters import bootstrap_weights, patient_codes
from sweep.analysis.compare import holm
from sweep.analysis.inputs import InputError, select
from sweep.configs.naming import config_label
from sweep.configs.star import FACTORS, depth, parse_label

LEVEL = 0.9
N_BOOT = 2000
PRIOR_DF = 4.0  # how many degrees of freedom the pooled seed variance counts for against one configuration's


def fusion_configs(rows) -> dict[str, dict]:
    """label -> parsed configuration of every fusion row (parents have no factors to step along, nor has a row whose
    cuts or widths no star could name)."""
    labels = {}
    for row in rows.to_dict("records"):
        if row.get("model") == "fusion":
            label = config_label(row)
            try:
                labels.setdefault(label, parse_label(label))
            except UsageError:
                continue
    return labels


def differing(a: dict, b: dict) -> list[str]:
    return [f for f in FACTORS if a[f] != b[f]]


def one_factor_neighbours(reference: dict, configs: dict[str, dict]) -> dict[str, str]:
    """label -> the one factor in which it differs from the reference, for every such configuration."""
    out = {}
    for label, config in configs.items():
        diff = differing(reference, config)
        if len(diff) == 1:
            out[label] = diff[0]
    return out


def choose_reference(configs: dict[str, dict], asked: str | None, around: str | None) -> str:
    """--reference when given (it must be a configuration of the sweep), else the `--around` reference of the run,
    else the configuration with the most one-factor neighbours (ties: the one whose neighbours are fewest steps
    away, i.e. the middle of a grid; then label order)."""
    if asked is not None:
        label = config_label(parse_label(asked))
        if label not in configs:
            raise InputError(f"--reference {asked!r} is not a fusion configuration of this sweep; it has "
                             f"{', '.join(sorted(configs)[:6])}{' ...' if len(configs) > 6 else ''}")
        return label
    if around is not None and config_label(parse_label(around)) in configs:
        return config_label(parse_label(around))
    def rank(label: str) -> tuple[int, int]:
        near = one_factor_neighbours(configs[label], configs)
        return len(near), -sum(abs(_steps(configs[label], configs[n], f, configs)) for n, f in near.items())

    return max(sorted(configs), key=rank) if configs else ""


def levels(factor: str, configs: dict[str, dict]) -> list:
    """The sweep's own ordered list of a factor's values: cuts by depth (no branch first), widths by size."""
    values = {config[factor] for config in configs.values()}
    if factor in ("cnn_cut", "resnet_cut"):
        return sorted(values, key=lambda cut: depth(factor, cut))
    return sorted(values)


def paired_deltas(correct: dict[str, np.ndarray], codes: np.ndarray, reference: str, others: list[str], *,
                  n_boot: int = N_BOOT, rng: np.random.Generator, level: float = LEVEL) -> list[dict]:
    """For each label in `others`: delta (points) against `reference`, its bootstrap se, interval and p-value.

    correct[label]: (seeds, n_images) 0/1 of that configuration's trials on the same images (same column order);
    codes: patient code per image. A draw reweights the images by how often their patient was drawn (the same
    weights for every configuration: paired) and adds to each configuration's accuracy the mean of its resampled
    seed deviations, rescaled to the seed variance that the images do not already carry (seed_variances)."""
    weights = bootstrap_weights(codes, n_boot, rng)
    totals = weights.sum(axis=1)
    labels = [reference, *others]
    variances = seed_variances([np.asarray(correct[lab], float) for lab in labels])
    draws = {}
    for label, variance in zip(labels, variances):
        y = np.asarray(correct[label], float)
        draws[label] = weights @ y.mean(axis=0) / totals + _seed_draws(y.mean(axis=1), variance, n_boot, rng)
    z = _normal_quantile(0.5 + level / 2)
    base = np.asarray(correct[reference], float).mean()
    out = []
    for label in others:
        delta = 100 * (np.asarray(correct[label], float).mean() - base)
        se = 100 * float(np.std(draws[label] - draws[reference], ddof=1))
        p = 2 * _normal_sf(abs(delta) / se) if se > 0 else (1.0 if delta == 0 else 0.0)
        out.append({"delta": delta, "se": se, "lo": delta - z * se, "hi": delta + z * se, "p": p})
    return out


def _seed_draws(accuracies: np.ndarray, variance: float, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """n_boot draws of a configuration's seed-mean error: its seeds resampled with replacement, their deviations
    standardised and scaled so the draws' variance is variance / seeds (a normal draw for a single seed)."""
    s = len(accuracies)
    spread = np.std(accuracies, ddof=1) if s > 1 else 0.0
    if spread == 0:
        return rng.normal(0.0, math.sqrt(variance / max(s, 1)), n_boot)
    standard = (accuracies - accuracies.mean()) / spread * math.sqrt(s / (s - 1))  # resampled mean: variance 1/s
    return standard[rng.integers(0, s, size=(n_boot, s))].mean(axis=1) * math.sqrt(variance)


def seed_variances(groups: list[np.ndarray]) -> np.ndarray:
    """Per configuration, the variance of one seed's accuracy beyond the per-image noise the patient bootstrap
    already carries: the spread of seed accuracies less the image-by-seed residual mean square / n (a two-way
    layout per configuration), pulled up toward the pooled value (PRIOR_DF pseudo degrees of freedom; pooled on the
    scale (m(1-m))^2, since a logit-scale seed effect moves a configuration at 90% less than one at 65%) but never
    below the configuration's own estimate: three seeds give a noisy variance, and one configuration whose seeds
    vary far more than the others' must keep its wide interval."""
    excess, dfs, means = [], [], []
    for y in groups:
        s, n = y.shape
        seed_acc = y.mean(axis=1)
        means.append(y.mean())
        if s < 2:
            excess.append(0.0)
            dfs.append(0.0)
            continue
        resid = y - seed_acc[:, None] - y.mean(axis=0)[None, :] + y.mean()
        ms_res = np.sum(resid ** 2) / ((s - 1) * (n - 1))
        excess.append(max(np.var(seed_acc, ddof=1) - ms_res / n, 0.0))
        dfs.append(s - 1.0)
    excess, dfs, means = np.array(excess), np.array(dfs), np.array(means)
    scale = np.maximum(means * (1 - means), 0.02) ** 2
    pooled = float(np.sum(excess / scale * dfs) / dfs.sum()) if dfs.sum() > 0 else 0.0
    return np.maximum(excess, (dfs * excess + PRIOR_DF * pooled * scale) / (dfs + PRIOR_DF))


def _normal_sf(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2))


def _normal_quantile(q: float) -> float:
    """Inverse of the standard normal cdf by bisection (the analysis needs no scipy for this)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 1 - _normal_sf(mid) < q else (lo, mid)
    return (lo + hi) / 2


def effects(trials, predictions, *, reference: str | None = None, around: str | None = None, seed: int = 0,
            n_boot: int = N_BOOT, level: float = LEVEL) -> dict:
    """The effects object (results contract, effects.json) of a results folder's tables.

    Rows that count are those the scaling analysis counts (test metrics, no error, not stopped by a scheduler,
    not collapsed); collapsed rows are left out and counted. InputError without predictions or neighbours."""
    chosen = select(trials, predictions, "params", "test")
    if chosen.correct is None:
        raise InputError("effects need per-image test predictions (predictions.parquet), which this folder lacks")
    configs = fusion_configs(chosen.used)
    # the sweep's own lists count every configuration that was scored, also one whose seeds all collapsed
    scored = fusion_configs(chosen.rows[~chosen.rows["trial_id"].isin(chosen.failed)])
    if reference is None and around is not None:
        asked = config_label(parse_label(around))
        if asked in scored and asked not in configs:
            raise InputError(f"every seed of the reference {asked} collapsed: no effects to estimate")
    label = choose_reference(configs, reference, around)
    if not label:
        raise InputError("no fusion configuration with test metrics: no effects to estimate")
    ref = configs[label]
    neighbours = one_factor_neighbours(ref, configs)
    if not neighbours:
        raise InputError(f"configuration {label} has no one-factor neighbours in this sweep: no effects to estimate")
    used = chosen.used.assign(label=[config_label(r) for r in chosen.used.to_dict("records")])
    ids = {lab: used.loc[used["label"] == lab, "trial_id"].tolist() for lab in [label, *neighbours]}
    correct = {lab: chosen.correct.loc[ids[lab]].to_numpy(float) for lab in ids}
    codes = patient_codes(chosen.correct.columns, _patient_map(predictions))
    order = sorted(neighbours, key=lambda lab: (FACTORS.index(neighbours[lab]), _steps(ref, configs[lab],
                                                                                        neighbours[lab], scored)))
    rng = np.random.default_rng(seed)
    measured = paired_deltas(correct, codes, label, order, n_boot=n_boot, rng=rng, level=level)
    adjusted = holm([m["p"] for m in measured])
    rows = []
    for lab, m, p_holm in zip(order, measured, adjusted):
        factor = neighbours[lab]
        rows.append({"factor": factor, "from": _level_value(ref[factor]), "to": _level_value(configs[lab][factor]),
                     "steps": _steps(ref, configs[lab], factor, scored), "n_seeds": len(ids[lab]),
                     "delta": round(m["delta"], 3), "lo": round(m["lo"], 3), "hi": round(m["hi"], 3),
                     "level": level, "p_holm": round(float(p_holm), 4), "config": lab, "se": round(m["se"], 3),
                     "p": round(m["p"], 4)})
    unestimated = sorted(set(one_factor_neighbours(ref, scored)) - set(neighbours))  # every seed collapsed
    star_labels = {*ids, *unestimated}
    collapsed = chosen.rows[chosen.rows["collapsed"]]
    n_collapsed = sum(config_label(r) in star_labels for r in collapsed.to_dict("records"))
    return {"reference": label, "effects": rows, "reference_accuracy": round(100 * correct[label].mean(), 3),
            "reference_n_seeds": len(ids[label]), "n_images": int(len(codes)), "n_patients": int(codes.max() + 1),
            "n_collapsed": int(n_collapsed), "unestimated": unestimated, "level": level, "n_boot": n_boot,
            "method": "paired cluster bootstrap over patients x seeds within each configuration; normal interval "
                      "from the bootstrap standard error; Holm over the family"}


def _level_value(value):
    return "none" if value is None else int(value) if isinstance(value, (int, np.integer)) else value


def _steps(ref: dict, other: dict, factor: str, configs: dict[str, dict]) -> int:
    ordered = levels(factor, configs)
    return ordered.index(other[factor]) - ordered.index(ref[factor])


def _patient_map(predictions):
    """image_id -> patient_id from predictions.parquet's test rows (None without the column: one film a patient)."""
    if predictions is None or "patient_id" not in predictions:
        return None
    test = predictions[predictions["split"] == "test"]
    return dict(zip(test["image_id"].astype(str), test["patient_id"]))
