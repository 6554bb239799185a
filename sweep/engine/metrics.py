"""Classification metrics with scikit-learn: the seed's report layout, confusion matrix, AUC, balanced accuracy."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn import metrics as skm

# the results contract: a row is `collapsed` when one class takes more than this share of its test predictions
COLLAPSE_SHARE = 0.98


def is_collapsed(preds: np.ndarray) -> bool:
    """True when one class takes more than COLLAPSE_SHARE of the predicted classes `preds` (ints or names)."""
    preds = np.asarray(preds)
    if preds.size == 0:
        return False
    _, counts = np.unique(preds, return_counts=True)
    return bool(counts.max() / preds.size > COLLAPSE_SHARE)


def classification_metrics(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str], *,
                           prefix: str = "test_") -> dict:
    """Flat dict: accuracy, balanced_accuracy, auc, per-class precision/recall/f1/support, macro and weighted
    averages (keys `<prefix>precision_<class>`, `<prefix>macro_f1`, ...), plus confusion_matrix and classes.

    labels: (N,) int in [0, K); probs: (N, K) class probabilities. AUC is one-vs-rest (macro) beyond 2
    classes, and NaN when the labels hold a single class."""
    labels = np.asarray(labels, np.int64)
    probs = np.asarray(probs, np.float64)
    k = len(classes)
    if probs.ndim != 2 or probs.shape[1] != k or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"probs must be (N={labels.shape[0]}, K={k}), got {probs.shape}")
    preds = probs.argmax(axis=1)
    ids = list(range(k))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, preds, labels=ids, zero_division=0)
    out: dict = {
        f"{prefix}accuracy": float(skm.accuracy_score(labels, preds)),
        f"{prefix}balanced_accuracy": _balanced_accuracy(labels, preds),
        f"{prefix}auc": _auc(labels, probs, ids),
    }
    for i, name in enumerate(classes):
        out[f"{prefix}precision_{name}"] = float(precision[i])
        out[f"{prefix}recall_{name}"] = float(recall[i])
        out[f"{prefix}f1_{name}"] = float(f1[i])
        out[f"{prefix}support_{name}"] = int(support[i])
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(labels, preds, labels=ids, average=average, zero_division=0)
        out.update({f"{prefix}{average}_precision": float(p), f"{prefix}{average}_recall": float(r),
                    f"{prefix}{average}_f1": float(f)})
    out["confusion_matrix"] = skm.confusion_matrix(labels, preds, labels=ids).tolist()
    out["classes"] = list(classes)
    return out


def _balanced_accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
    present = np.unique(labels)
    if present.size == 0:
        return float("nan")
    # mean recall over the classes present in the labels (sklearn's definition), without its warning
    recall = skm.recall_score(labels, preds, labels=list(present), average=None, zero_division=0)
    return float(np.mean(recall))


def _auc(labels: np.ndarray, probs: np.ndarray, ids: list[int]) -> float:
    if np.unique(labels).size < 2:
        return float("nan")
    if len(ids) == 2:
        return float(skm.roc_auc_score(labels, probs[:, 1]))
    present = np.unique(labels)
    if present.size < len(ids):  # ovr over the classes present, probabilities renormalised over them
        sub = probs[:, present] / np.clip(probs[:, present].sum(1, keepdims=True), 1e-12, None)
        remap = {c: i for i, c in enumerate(present)}
        return float(skm.roc_auc_score([remap[c] for c in labels], sub, multi_class="ovr", average="macro")) \
            if present.size > 2 else float(skm.roc_auc_score([remap[c] for c in labels], sub[:, 1]))
    return float(skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=ids))


def classification_report_text(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> str:
    """The report in the layout of the seed's figures: sklearn's classification_report, two digits."""
    preds = np.asarray(probs).argmax(axis=1)
    return skm.classification_report(np.asarray(labels), preds, labels=list(range(len(classes))),
                                     target_names=list(classes), digits=2, zero_division=0)
