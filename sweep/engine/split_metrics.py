"""Metrics of the evaluation splits beyond `test`, in trials.csv's column names.

`ext:NAME` (an external set): ext_<NAME>_n, _accuracy, _balanced_accuracy, _auc (NaN balanced accuracy and AUC when
one class is present). `cf:NAME` (counterfactual copies of test images, each with its original's image id):
cf_<NAME>_n, _accuracy, and _source_accuracy (the same model's accuracy on the originals of those copies); the
`no_marker` set's difference is `shortcut_reliance`: accuracy on the marked test images minus on their copies with
the marker removed.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from sweep.engine.metrics import classification_metrics

RELIANCE_SET = "no_marker"


def _accuracy(labels, probs) -> float:
    return float(np.mean(np.asarray(probs).argmax(1) == np.asarray(labels))) if len(labels) else float("nan")


def external_metrics(name: str, labels, probs, classes: Sequence[str]) -> dict:
    full = classification_metrics(labels, probs, classes, prefix=f"ext_{name}_")
    out = {f"ext_{name}_n": int(len(labels))}
    out.update({f"ext_{name}_{k}": full[f"ext_{name}_{k}"] for k in ("accuracy", "balanced_accuracy", "auc")})
    if len(np.unique(labels)) < 2:  # the contract: with one class, accuracy is its recall; the others are undefined
        out[f"ext_{name}_balanced_accuracy"] = float("nan")
    return out


def counterfactual_metrics(name: str, labels, probs, ids, test_ids, test_labels, test_probs) -> dict:
    """Accuracy on the copies and on their originals (matched by image id in the test split)."""
    row_of = {str(i): k for k, i in enumerate(np.asarray(test_ids).astype(str))}
    missing = [str(i) for i in ids if str(i) not in row_of]
    if missing:
        raise ValueError(f"counterfactual set {name!r} has copies of images not in the test split, e.g. {missing[0]!r}")
    rows = np.array([row_of[str(i)] for i in ids], dtype=int)
    out = {f"cf_{name}_n": int(len(labels)), f"cf_{name}_accuracy": _accuracy(labels, probs),
           f"cf_{name}_source_accuracy": _accuracy(np.asarray(test_labels)[rows], np.asarray(test_probs)[rows])}
    if name == RELIANCE_SET:
        out["shortcut_reliance"] = out[f"cf_{name}_source_accuracy"] - out[f"cf_{name}_accuracy"]
    return out


def split_metrics(predictions: Mapping[str, object], ids: Mapping[str, Sequence[str]], classes: Sequence[str]) -> dict:
    """trials.csv columns of every `ext:` and `cf:` split. predictions: split -> SplitPredictions (labels, probs);
    ids: split -> image ids in the same row order (the test split's included)."""
    out: dict = {}
    test = predictions.get("test")
    for split, scored in predictions.items():
        kind, _, name = split.partition(":")
        if kind == "ext":
            out.update(external_metrics(name, scored.labels, scored.probs, classes))
        elif kind == "cf":
            out.update(counterfactual_metrics(name, scored.labels, scored.probs, ids[split], ids["test"],
                                              test.labels, test.probs))
    return out
