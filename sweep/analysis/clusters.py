"""Patients as the unit of resampling: patient codes per image, cluster-bootstrap weights, cluster-robust covariance.

Films of one patient are not independent (the same lungs, often the same machine and day), so every interval over
test images resamples patients, not images. A bootstrap draw picks patients with replacement; each image then
counts as often as its patient was drawn, which these functions express as a weight per image so that one
matrix product gives every draw's statistic. Where there is no patient metadata (synthetic data, a folder
without metadata.csv) each image is its own patient and everything reduces to the image-level versions.
"""
from __future__ import annotations

import numpy as np


def patient_codes(image_ids, patient_of=None) -> np.ndarray:
    """int code per image (0..G-1, in order of first appearance) of its patient; each image its own without a map.

    `patient_of` maps image id -> patient id (a dict or pandas Series); an image it lacks, or whose patient is
    missing/empty, is its own patient."""
    image_ids = [str(i) for i in image_ids]
    if patient_of is None:
        return np.arange(len(image_ids))
    get = patient_of.get
    groups = []
    for image in image_ids:
        patient = get(image)
        missing = patient is None or (isinstance(patient, float) and np.isnan(patient)) or str(patient) == ""
        groups.append(("image", image) if missing else ("patient", str(patient)))
    _, first, codes = np.unique(np.array([f"{k}\x00{v}" for k, v in groups]), return_index=True, return_inverse=True)
    # renumber by first appearance so codes do not depend on string order
    rank = np.empty(len(first), int)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[codes]


def n_patients(codes: np.ndarray) -> int:
    return int(codes.max()) + 1 if len(codes) else 0


def bootstrap_weights(codes: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_images) weights: how often each image's patient was drawn in a draw of G patients from G."""
    g = n_patients(codes)
    counts = rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot) if g else np.zeros((n_boot, 0))
    return counts[:, codes].astype(float)


def weighted_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per draw, the weighted mean over images of values (..., n): result (n_boot, ...)."""
    totals = weights.sum(axis=1)
    return np.tensordot(weights, np.moveaxis(np.asarray(values, float), -1, 0), axes=1) / \
        totals.reshape((-1,) + (1,) * (np.ndim(values) - 1))


def mean_cov(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(k, k) covariance of the k image-means of values (k, n), patients as independent clusters.

    The cluster-robust (sandwich) estimate: the per-patient sums of deviations from each mean, their outer
    products summed over patients, scaled by G/(G-1) / n^2. With one image per patient it equals the image-level
    covariance of the values divided by n (np.cov(values) / n)."""
    values = np.atleast_2d(np.asarray(values, float))
    n = values.shape[1]
    g = n_patients(codes)
    if g < 2:
        return np.full((values.shape[0], values.shape[0]), np.nan)
    deviations = values - values.mean(axis=1, keepdims=True)
    sums = np.zeros((values.shape[0], g))
    np.add.at(sums.T, codes, deviations.T)
    return sums @ sums.T * (g / (g - 1)) / n ** 2
