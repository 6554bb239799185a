"""Per-configuration tables of a sweep (mean and spread over seeds) and the Pareto front of size against accuracy."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sweep.configs.naming import CONFIG_KEYS, config_label

SIZE_COLUMNS = ("params", "flops", "latency_ms")


def config_table(trials, quality: str = "test_accuracy"):
    """One row per configuration over its finished seeds: sizes, and mean/std/min/max/count of `quality`."""
    done = trials[trials[quality].notna()]
    if done.empty:
        return pd.DataFrame(columns=[*CONFIG_KEYS, "label", *SIZE_COLUMNS, "seeds", f"{quality}_mean"])
    rows = []
    for group in by_configuration(done):
        first = group.iloc[0]
        row = {k: (first[k] if not _isna(first[k]) else None) for k in CONFIG_KEYS}
        row["label"] = config_label(row)
        for size in SIZE_COLUMNS:
            row[size] = float(group[size].mean()) if size in group and group[size].notna().any() else np.nan
        values = group[quality].astype(float)
        row.update({"seeds": int(len(values)), f"{quality}_mean": values.mean(),
                    f"{quality}_std": values.std(ddof=1) if len(values) > 1 else 0.0,
                    f"{quality}_min": values.min(), f"{quality}_max": values.max()})
        for extra in ("test_balanced_accuracy", "test_auc", "val_accuracy", "train_seconds"):
            if extra != quality and extra in group:
                row[f"{extra}_mean"] = group[extra].astype(float).mean()
        rows.append(row)
    return pd.DataFrame(rows).sort_values("params", kind="stable").reset_index(drop=True)


def by_configuration(trials) -> list:
    """The rows of `trials` grouped by configuration (CONFIG_KEYS, missing values equal), in first-seen order."""
    if trials.empty:
        return []
    keys = trials[list(CONFIG_KEYS)].astype(object).where(trials[list(CONFIG_KEYS)].notna(), "")
    key = keys.astype(str).agg("|".join, axis=1)
    return [group for _, group in trials.groupby(key, sort=False)]


def _isna(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def pareto_front(configs, size: str = "params", quality: str = "test_accuracy_mean"):
    """Configurations no other beats on both axes (smaller-or-equal size AND higher-or-equal quality, one strictly)."""
    table = configs[configs[size].notna() & configs[quality].notna()]
    keep = []
    for i, row in table.iterrows():
        dominated = ((table[size] <= row[size]) & (table[quality] >= row[quality])
                     & ((table[size] < row[size]) | (table[quality] > row[quality]))).any()
        if not dominated:
            keep.append(i)
    return table.loc[keep].sort_values(size).reset_index(drop=True)
