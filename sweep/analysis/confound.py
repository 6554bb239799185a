"""The confound probe: how well a small model on anatomy-free image statistics predicts the label.

When the classes of a dataset come from different sources (hospitals, scanners, archives), a classifier can
score by recognising the source instead of the disease. The probe measures how much of the label such
source-level cues carry: scikit-learn's logistic regression on features that describe the film, not the chest,
scored by patient-grouped cross-validation over every image of the dataset. Its AUC is a floor for what a deep
model can reach without looking at any anatomy. The features are computed on the prepared images (after the one
resize every model sees), so they are cues that survive the preprocessing. No JAX: numpy, OpenCV, scikit-learn.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import cv2
import numpy as np

HISTOGRAM_BINS = 16
BAND = 0.08  # width of the border band on each side, as a fraction of the image side
CORNER = 0.12  # side of each corner square, as a fraction of the image side
FOLDS = 5
LEVEL = 0.9
# What the features are, in the words report.md and shift.json use.
FEATURE_GROUPS = (
    f"intensity histogram ({HISTOGRAM_BINS} bins) and moments (mean, sd, skewness, 1/5/50/95/99th percentiles, "
    "share of black and of white pixels)",
    f"border statistics (mean and sd of the outer {BAND:.0%} band on each side, border minus whole-image mean, "
    "share of constant rows and columns)",
    f"corner statistics (mean and sd of each {CORNER:.0%} corner square, share of white pixels there)",
    "noise (median absolute high-pass residual)",
    "sharpness (variance of the Laplacian, mean gradient magnitude)",
)


def _moments(x: np.ndarray) -> list[float]:
    mean, sd = float(x.mean()), float(x.std())
    skew = float(((x - mean) ** 3).mean() / sd ** 3) if sd > 0 else 0.0
    return [mean, sd, skew, *np.percentile(x, (1, 5, 50, 95, 99)).tolist(), float(np.mean(x <= 2)),
            float(np.mean(x >= 253))]


def _border(x: np.ndarray) -> list[float]:
    h, w = x.shape
    b = max(1, int(round(BAND * min(h, w))))
    sides = (x[:b], x[-b:], x[:, :b], x[:, -b:])
    out = []
    for side in sides:
        out += [float(side.mean()), float(side.std())]
    band = np.concatenate([s.ravel() for s in sides])
    constant_rows = float(np.mean(x.std(axis=1) < 2.0 / 255))
    constant_cols = float(np.mean(x.std(axis=0) < 2.0 / 255))
    return out + [float(band.mean() - x.mean()), constant_rows, constant_cols]


def _corners(x: np.ndarray) -> list[float]:
    h, w = x.shape
    c = max(1, int(round(CORNER * min(h, w))))
    out = []
    for corner in (x[:c, :c], x[:c, -c:], x[-c:, :c], x[-c:, -c:]):
        out += [float(corner.mean()), float(corner.std()), float(np.mean(corner >= 253 / 255))]
    return out


def _noise_and_sharpness(x: np.ndarray) -> list[float]:
    smooth = cv2.GaussianBlur(x, (3, 3), 1.0)
    residual = np.abs(x - smooth)
    laplacian = cv2.Laplacian(x, cv2.CV_32F, ksize=3)
    gx = cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=3)
    return [float(np.median(residual)), float(laplacian.var()), float(np.sqrt(gx ** 2 + gy ** 2).mean())]


def image_features(image: np.ndarray) -> np.ndarray:
    """The probe's feature vector of one prepared grey image (uint8 (H,W), or float in [0, 1])."""
    x = np.asarray(image)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.ndim != 2:
        raise ValueError(f"the confound probe reads 2-D grey images, got shape {x.shape}")
    histogram = np.histogram(x, bins=HISTOGRAM_BINS, range=(0.0, 1.0))[0] / x.size
    values = [*histogram.tolist(), *_moments(x), *_border(x), *_corners(x), *_noise_and_sharpness(x)]
    return np.asarray(values, np.float64)


def features_of(images: Iterable[np.ndarray]) -> np.ndarray:
    """(N, F) features of a stream of images (or of image batches (B,H,W)), in order."""
    rows = []
    for item in images:
        item = np.asarray(item)
        rows += [image_features(x) for x in (item if item.ndim == 3 else item[None])]
    return np.stack(rows) if rows else np.zeros((0, len(image_features(np.zeros((8, 8), np.uint8)))))


def _binary_auc(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    """Weighted Mann-Whitney AUC of `scores` for the boolean `positive` (ties count half)."""
    values, tie = np.unique(scores, return_inverse=True)
    neg = np.bincount(tie, weights * ~positive, minlength=len(values))
    below = np.cumsum(neg) - neg
    w_pos, w_neg = float(np.sum(weights * positive)), float(neg.sum())
    if w_pos <= 0 or w_neg <= 0:
        return float("nan")
    return float(np.sum((weights * positive) * (below[tie] + 0.5 * neg[tie])) / (w_pos * w_neg))


def _auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """ROC AUC: binary on column 1, else the macro one-vs-rest mean over the classes present (NaN with one class).
    `weights` (images counted that many times) make a bootstrap resample without copying rows."""
    weights = np.ones(len(labels)) if weights is None else weights
    present = np.unique(labels[weights > 0])
    if present.size < 2:
        return float("nan")
    if scores.shape[1] == 2:
        return _binary_auc(labels == 1, scores[:, 1], weights)
    return float(np.mean([_binary_auc(labels == c, scores[:, c], weights) for c in present]))


def _group_bootstrap(labels, scores, groups, rng, n_boot: int) -> np.ndarray:
    """AUCs of `n_boot` resamples of whole groups (patients) with replacement."""
    uniq, inverse = np.unique(groups, return_inverse=True)
    out = []
    for _ in range(n_boot):
        drawn = np.bincount(rng.integers(len(uniq), size=len(uniq)), minlength=len(uniq))
        out.append(_auc(labels, scores, drawn[inverse].astype(np.float64)))
    out = np.asarray(out)
    return out[np.isfinite(out)]


def _folds(labels: np.ndarray, groups: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, held-out) folds: a group never straddles them, and each class's groups are spread evenly (groups
    shuffled by `seed`, then dealt round-robin within their majority class). scikit-learn's StratifiedGroupKFold
    does the same job but took 11 s for 800 one-image groups on a loaded 2-core machine."""
    uniq, group_of = np.unique(np.asarray(groups), return_inverse=True)
    classes, class_of = np.unique(labels, return_inverse=True)
    k = min(FOLDS, len(uniq), max(2, int(np.bincount(class_of).min())))
    counts = np.zeros((len(uniq), len(classes)), np.int64)
    np.add.at(counts, (group_of, class_of), 1)
    order = np.random.default_rng((seed, 0xF01D)).permutation(len(uniq))
    order = order[np.argsort(counts.argmax(1)[order], kind="stable")]  # by majority class, shuffled within
    fold_of_group = np.empty(len(uniq), np.int64)
    fold_of_group[order] = np.arange(len(uniq)) % k
    fold = fold_of_group[group_of]
    return [(np.nonzero(fold != f)[0], np.nonzero(fold == f)[0]) for f in range(k)]


def probe(features: np.ndarray, labels: Sequence[int], groups: Sequence[str], classes: Sequence[str], *,
          seed: int = 0, n_boot: int = 1000) -> dict:
    """Cross-validated AUC of the probe with a 90% interval (bootstrap over groups of the out-of-fold scores).

    features: (N, F) from features_of; labels: (N,) class indices; groups: (N,) patient ids (a group never
    straddles a training and a held-out fold)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, np.float64)
    y, groups = np.asarray(labels), np.asarray(groups).astype(str)
    if len(np.unique(y)) < 2:
        raise ValueError("the confound probe needs at least two classes present")
    scores = np.zeros((len(y), len(classes)))
    folds = _folds(y, groups, seed)
    for train, held in folds:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
        model.fit(x[train], y[train])
        scores[np.ix_(held, model.classes_)] = model.predict_proba(x[held])
    auc = _auc(y, scores)
    boot = _group_bootstrap(y, scores, groups, np.random.default_rng(seed), n_boot)
    tail = (1 - LEVEL) / 2
    lo, hi = (np.quantile(boot, [tail, 1 - tail]).tolist() if boot.size else [float("nan")] * 2)
    return {"auc": auc, "lo": lo, "hi": hi, "level": LEVEL, "n_images": int(len(y)),
            "n_groups": int(len(np.unique(groups))), "folds": len(folds),
            "model": "logistic regression (standardised features, C=1) from scikit-learn",
            "cv": f"{len(folds)}-fold cross-validation grouped by patient, stratified by class",
            "features": list(FEATURE_GROUPS), "n_features": int(x.shape[1])}


def share_of_model_auc(probe_auc: float, model_auc: float) -> float:
    """How much of a model's lift over chance the probe already reaches: (probe - 0.5) / (model - 0.5)."""
    if not (np.isfinite(probe_auc) and np.isfinite(model_auc)) or model_auc <= 0.5:
        return float("nan")
    return float((probe_auc - 0.5) / (model_auc - 0.5))
