"""What the accuracy-versus-size figures draw: one point per (configuration, seed) row, each configuration's mean
with an interval over its seeds, the chance and majority-class lines. Accuracy in points (0-100), like scaling.json."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sweep.configs.naming import config_label, is_seed_fusion

SIZE_AXES = {"params": "parameters", "flops": "FLOPs per image (forward)", "latency_ms": "latency per image (ms)"}
INTERVAL_LEVEL = 0.90  # the contract's level for intervals
ROLES = ("fusion", "seed's fusion", "CNN parent", "ResNet50V2 parent")


def row_label(row: dict) -> str:
    """The configuration's label of a trials.csv row (config_label reads NaN, '' and 'none' cuts as absent)."""
    return config_label(row)


def role_of(row) -> str:
    """How a figure marks a configuration: the parents, the seed paper's own fusion, or another fusion."""
    if row["model"] == "cnn":
        return "CNN parent"
    if row["model"] == "resnet50v2":
        return "ResNet50V2 parent"
    if row["model"] != "fusion":  # a parent of a sweep over other backbones (run --backbones)
        return f"{row['model']} parent"
    return "seed's fusion" if is_seed_fusion(row) else "fusion"


def acc_column(split: str) -> str:
    """The points table's accuracy column of a split: acc_test, acc_ext_NAME, acc_cf_NAME."""
    return "acc_" + split.replace(":", "_")


def split_column(split: str) -> str:
    """trials.csv's accuracy column of a split: `test` or `ext:NAME` (or `cf:NAME`)."""
    if split == "test":
        return "test_accuracy"
    kind, name = split.split(":", 1)
    return f"{kind}_{name}_accuracy"


def seed_points(trials: pd.DataFrame, splits: list[str]) -> pd.DataFrame:
    """One row per trial that has test metrics: identity, sizes, role, collapsed, accuracy (points) per split."""
    done = trials[trials["test_accuracy"].notna()].copy() if "test_accuracy" in trials else trials.iloc[:0].copy()
    rows = []
    for _, row in done.iterrows():
        config = row.to_dict()
        point = {"trial_id": str(row["trial_id"]), "config": row_label(config), "seed": _int(row.get("seed")),
                 "model": row["model"], "role": role_of(config), "collapsed": bool(row.get("collapsed", False)),
                 "train_status": str(row.get("train_status", "") or "")}
        for size in SIZE_AXES:
            point[size] = _positive(row.get(size))
        for split in splits:
            point[acc_column(split)] = _points(row.get(split_column(split)))
        rows.append(point)
    columns = ["trial_id", "config", "seed", "model", "role", "collapsed", "train_status", *SIZE_AXES,
               *(acc_column(s) for s in splits)]
    return pd.DataFrame(rows, columns=columns)


def config_means(points: pd.DataFrame, split: str) -> pd.DataFrame:
    """Per configuration and split: mean accuracy over its non-collapsed seeds with a t interval (a single seed
    has none), sizes, role; `all_collapsed` when every seed collapsed (then the mean is over all, drawn hollow)."""
    column = acc_column(split)
    rows = []
    for config, group in points.groupby("config", sort=False):
        valid = group[group[column].notna()]
        if valid.empty:
            continue
        kept = valid[~valid["collapsed"]]
        used = kept if len(kept) else valid
        mean, lo, hi = mean_interval(used[column].to_numpy(float))
        first = group.iloc[0]
        rows.append({"config": config, "role": first["role"], "model": first["model"], "split": split,
                     **{size: group[size].mean() for size in SIZE_AXES},
                     "mean": mean, "lo": lo, "hi": hi, "seeds": int(len(used)),
                     "collapsed_seeds": int(valid["collapsed"].sum()), "all_collapsed": kept.empty})
    return pd.DataFrame(rows)


def mean_interval(values: np.ndarray, level: float = INTERVAL_LEVEL) -> tuple[float, float, float]:
    """Mean (points) and a Student-t interval over seeds made on the logit scale, so that it stays inside 0-100
    (a t interval over 2 seeds in points ran to 35-108%); (mean, nan, nan) for a single seed."""
    from scipy import stats

    values = values[np.isfinite(values)]
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    logits = np.log(np.clip(values, 0.05, 99.95) / (100 - np.clip(values, 0.05, 99.95)))
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * logits.std(ddof=1) / math.sqrt(len(values))
    lo, hi = (100 / (1 + np.exp(-(logits.mean() + sign * half))) for sign in (-1, 1))
    return mean, min(float(lo), mean), max(float(hi), mean)


def baselines(trials: pd.DataFrame, classes: list[str]) -> dict[str, float]:
    """Chance (1/classes) and the test split's majority-class rate, in points, where the tables say them."""
    out = {}
    if classes:
        out["chance"] = 100.0 / len(classes)
    supports = [f"test_support_{c}" for c in classes]
    if classes and all(s in trials for s in supports):
        counts = trials[supports].dropna()
        if len(counts):
            first = counts.iloc[0].to_numpy(float)
            if first.sum() > 0:
                out["majority"] = 100.0 * first.max() / first.sum()
    return out


def _points(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return 100.0 * value if math.isfinite(value) else math.nan


def _positive(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) and value > 0 else math.nan


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
