"""Which configurations are not distinguishable from the best? Paired on the same test images, Holm-corrected.

The best configuration is the one with the highest mean accuracy over its non-collapsed seeds. Every other
configuration is compared with it by the difference of their means, whose variance comes from the evidence's
covariance: the shared-image part cancels between the two (the pairing), the seed parts add. A one-sided
z-test per configuration ("worse than the best"), Holm's step-down correction over all of them at ALPHA.
"""
from __future__ import annotations

import math

import numpy as np

from sweep.analysis.evidence import Evidence

ALPHA = 0.05
Z90 = 1.6448536269514722


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (monotone, capped at 1)."""
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def upper_tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def against_best(evidence: Evidence, labels: list[str]) -> list[dict]:
    """One row per configuration, best first: accuracy and its 90% interval, the gap to the best with its
    90% interval, Holm-adjusted p of 'worse than the best', and whether it is distinguishable (points)."""
    means, cov = evidence.means, evidence.cov
    best = int(np.argmax(means))
    others = [i for i in range(len(means)) if i != best]
    gaps = np.array([means[best] - means[i] for i in others])
    se = np.sqrt(np.maximum([cov[best, best] + cov[i, i] - 2 * cov[best, i] for i in others], 1e-12))
    adjusted = holm(np.array([upper_tail(g / s) for g, s in zip(gaps, se)])) if others else np.array([])
    rows = []
    for i in [best, *others]:
        lo, hi = logit_interval(means[i], math.sqrt(max(cov[i, i], 0.0)))
        row = {"config": labels[i], **{k: _plain(v) for k, v in evidence.configs[i].items()},
               "size": float(evidence.sizes[i]), "seeds": int(evidence.seeds[i]),
               "accuracy": 100 * means[i], "lo": 100 * lo, "hi": 100 * hi,
               "gap": 0.0, "gap_lo": 0.0, "gap_hi": 0.0, "p_holm": None, "distinguishable": False, "best": i == best}
        if i != best:
            j = others.index(i)
            row.update(gap=100 * gaps[j], gap_lo=100 * (gaps[j] - Z90 * se[j]), gap_hi=100 * (gaps[j] + Z90 * se[j]),
                       p_holm=float(adjusted[j]), distinguishable=bool(adjusted[j] < ALPHA))
        rows.append(row)
    return sorted(rows, key=lambda r: (r["distinguishable"], -r["accuracy"]))


def logit_interval(mean: float, sd: float, z: float = Z90) -> tuple[float, float]:
    """90% interval of an accuracy (fraction) with standard error sd, made on the logit scale (delta method) so that
    it stays inside 0-1: a symmetric interval around 95% with a 4-point sd would run past 100%."""
    m = min(max(mean, 1e-4), 1 - 1e-4)
    centre, half = math.log(m / (1 - m)), z * sd / (m * (1 - m))
    return 1 / (1 + math.exp(-(centre - half))), 1 / (1 + math.exp(-(centre + half)))


def _plain(value):
    """numpy scalars and NaN as JSON-friendly values."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value
