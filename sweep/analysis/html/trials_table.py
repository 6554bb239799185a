"""The trials table of report.html: which columns of trials.csv it shows, with titles and number formats."""
from __future__ import annotations

import math

import pandas as pd

from sweep.analysis.html.points import row_label

FIXED = (  # trials.csv column -> title, digits (None: text)
    ("seed", "seed", 0), ("model", "model", None), ("params", "params", 0), ("flops", "FLOPs", 0),
    ("latency_ms", "latency ms", 3), ("status", "status", None), ("train_status", "train status", None),
    ("collapsed", "collapsed", None), ("best_epoch", "best epoch", 0), ("weights_epoch", "weights epoch", 0),
    ("val_accuracy", "val acc", 3), ("test_accuracy", "test acc", 3),
    ("test_balanced_accuracy", "test balanced acc", 3), ("test_auc", "test AUC", 3),
)
TRAILING = (("shortcut_reliance", "shortcut reliance", 3), ("trial_id", "trial id", None))
EXTERNAL_METRICS = (("accuracy", "acc", 3), ("balanced_accuracy", "balanced acc", 3), ("auc", "AUC", 3))


def table_data(trials: pd.DataFrame, external: list[str], counterfactual: list[str]) -> dict:
    """{'columns': [{key, title, type, digits}], 'rows': [[...]]} for report.js (configuration first)."""
    spec = [("config", "configuration", None)] + [c for c in FIXED if c[0] in trials]
    for name in external:
        spec += [(f"ext_{name}_{m}", f"{name} {title}", d) for m, title, d in EXTERNAL_METRICS
                 if f"ext_{name}_{m}" in trials]
    spec += [(f"cf_{name}_accuracy", f"{name} (counterfactual) acc", 3) for name in counterfactual]
    spec += [c for c in TRAILING if c[0] in trials]
    columns = [{"key": key, "title": title, "type": "text" if digits is None else "num", "digits": digits}
               for key, title, digits in spec]
    rows = []
    for _, row in trials.iterrows():
        record = row.to_dict()
        record["config"] = row_label(record)
        rows.append([_cell(record.get(c["key"]), c["type"]) for c in columns])
    return {"columns": columns, "rows": rows}


def _cell(value, kind: str):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "num":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return number if math.isfinite(number) else None
    return str(value)
