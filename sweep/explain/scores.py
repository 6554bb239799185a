"""Pure-numpy scores of one attribution map (where its mass falls: border, marker, lesion, lungs), the share a
uniform map would have there, intervals over patients (their films together), and how two maps agree."""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

BORDER_FRACTION = 0.10  # the outer band whose attribution share is border_share
UNIFORM_BORDER_SHARE = 1 - (1 - 2 * BORDER_FRACTION) ** 2  # a map spread evenly puts 0.36 in that band
LEVEL = 0.9  # intervals over patients
N_BOOT = 2000
MIN_IMAGES = 4  # fewer usable values give no interval (a bootstrap of two or three values is far too narrow)


def _as_map(values: np.ndarray) -> np.ndarray:
    """(H,W) or (H,W,C) -> (H,W) float64, summing channels."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 3:
        values = values.sum(axis=-1)
    if values.ndim != 2:
        raise ValueError(f"an attribution map must be (H,W) or (H,W,C), got shape {values.shape}")
    return values


def _share(weights: np.ndarray, region: np.ndarray) -> float:
    total = weights.sum()
    return float(weights[region].sum() / total) if total > 0 else float("nan")


def border_mask(shape: tuple[int, int], fraction: float = BORDER_FRACTION) -> np.ndarray:
    """True in the outer band that is `fraction` of the height (top/bottom) and width (left/right) wide."""
    h, w = shape
    by, bx = max(1, int(round(h * fraction))), max(1, int(round(w * fraction)))
    mask = np.ones((h, w), dtype=bool)
    mask[by:h - by, bx:w - bx] = False
    return mask


def box_mask(shape: tuple[int, int], box) -> np.ndarray | None:
    """Boolean mask of the box [y0, x0, y1, x1) (end-exclusive); None for a missing box (-1 row or None)."""
    if box is None:
        return None
    y0, x0, y1, x1 = (int(v) for v in box)
    if min(y0, x0, y1, x1) < 0 or y1 <= y0 or x1 <= x0:
        return None
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def border_share(values: np.ndarray, fraction: float = BORDER_FRACTION) -> float:
    """Share of |attribution| mass in the outer band (a uniform map gives 1 - (1 - 2*fraction)^2 = 0.36)."""
    v = np.abs(_as_map(values))
    return _share(v, border_mask(v.shape, fraction))


def marker_share(values: np.ndarray, box) -> float:
    """Share of |attribution| mass inside the marker box; NaN when the image has no marker."""
    v = np.abs(_as_map(values))
    mask = box_mask(v.shape, box)
    return float("nan") if mask is None else _share(v, mask)


def lesion_share(values: np.ndarray, lesion_mask: np.ndarray | None) -> float:
    """Share of POSITIVE attribution inside the lesion mask; NaN when there is no (non-empty) lesion mask."""
    if lesion_mask is None or not np.any(lesion_mask):
        return float("nan")
    v = np.clip(_as_map(values), 0, None)
    return _share(v, np.asarray(lesion_mask, dtype=bool))


def pointing_hit(values: np.ndarray, lesion_mask: np.ndarray | None) -> float:
    """1.0 when the map's maximum falls inside the lesion mask, 0.0 when not, NaN without a lesion mask."""
    if lesion_mask is None or not np.any(lesion_mask):
        return float("nan")
    v = _as_map(values)
    y, x = np.unravel_index(int(np.argmax(v)), v.shape)
    return float(bool(np.asarray(lesion_mask)[y, x]))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps of the same shape (NaN if either is constant)."""
    a, b = _as_map(a).ravel(), _as_map(b).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps differ in size: {a.size} vs {b.size}")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def lung_share(values: np.ndarray, lung_mask: np.ndarray | None) -> float:
    """Share of |attribution| mass inside the lung fields; NaN without a (non-empty) lung mask."""
    if lung_mask is None or not np.any(lung_mask):
        return float("nan")
    v = np.abs(_as_map(values))
    return _share(v, np.asarray(lung_mask, dtype=bool))


def region_fraction(mask: np.ndarray | None) -> float:
    """The share a uniform map puts in `mask`: its area over the image's (NaN without a mask)."""
    if mask is None or not np.any(mask):
        return float("nan")
    return float(np.asarray(mask, bool).mean())


def usable(values: np.ndarray) -> bool:
    """A map that can be scored: every value finite and some of them non-zero (else every share is NaN)."""
    v = _as_map(values)
    return bool(np.all(np.isfinite(v)) and np.any(v != 0))


def bootstrap_mean(values, *, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0,
                   groups=None) -> tuple[float, float, float, int]:
    """(mean, lo, hi, n) of the finite `values` (one per image), the interval from resampling patients (`groups`: one
    patient id per value; None: each image its own patient); the interval is NaN with fewer than MIN_IMAGES values,
    all NaN with none."""
    values = list(values)
    keep = [i for i, v in enumerate(values) if v is not None and np.isfinite(v)]
    x = np.asarray([values[i] for i in keep], np.float64)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan"), 0
    if x.size < MIN_IMAGES:
        return float(x.mean()), float("nan"), float("nan"), int(x.size)
    rng = np.random.default_rng(seed)
    # patients drawn with replacement, each film counted as often as its patient (films of one patient together)
    _, codes = np.unique(np.asarray([str(groups[i]) for i in keep]) if groups is not None else np.arange(x.size),
                         return_inverse=True)
    drawn = rng.multinomial(codes.max() + 1, np.full(codes.max() + 1, 1 / (codes.max() + 1)), size=n_boot)[:, codes]
    means = drawn @ x / drawn.sum(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return float(x.mean()), float(lo), float(hi), int(x.size)
