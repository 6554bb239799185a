"""Per-configuration tables of a sweep (mean and spread over seeds) and the Pareto front of size against accuracy."""
from __future__ import annotations

import math

import numpy as np

from sweep.tune.space import config_label

CONFIG_KEYS = ("model", "cnn_cut", "resnet_cut", "branch_width", "head_width")
SIZE_COLUMNS = ("params", "flops", "latency_ms")


def config_table(trials, quality: str = "test_accuracy"):
    """One row per configuration over its finished seeds: sizes, and mean/std/min/max/count of `quality`."""
    import pandas as pd

    done = trials[trials[quality].notna()].copy()
    if done.empty:
        return pd.DataFrame(columns=[*CONFIG_KEYS, "label", *SIZE_COLUMNS, "seeds", f"{quality}_mean"])
    keys = done[list(CONFIG_KEYS)].astype(object).where(done[list(CONFIG_KEYS)].notna(), "")
    done["_key"] = keys.astype(str).agg("|".join, axis=1)
    rows = []
    for _, group in done.groupby("_key", sort=False):
        first = group.iloc[0]
        row = {k: (first[k] if not _isna(first[k]) else None) for k in CONFIG_KEYS}
        row["label"] = label(row)
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


def _isna(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def label(config: dict) -> str:
    """The configuration's short name (table rows from CSV carry widths as floats)."""
    return config_label(config)


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
