"""Procedural chest-X-ray-like images with lesion masks, lung fields and plantable shortcuts (text markers, brightness
shifts), made by one plain site or by several synthetic acquisition sites (data.sites); any image can be drawn again
without its marker or without its brightness shift (a counterfactual copy with the same id)."""
from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np

from data.sites import check_site, external_start, per_class, site_noise, site_of, site_probabilities
from data.spec import SiteSpec

# Canonical class names (matched case-insensitively, ignoring spaces/underscores/dashes).
KNOWN_CLASSES = ("COVID", "Normal", "Viral Pneumonia", "Lung_Opacity")
MARKER_TEXTS = ("R", "L", "PORTABLE", "AP")


def _norm_name(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


_PATTERNS = {_norm_name(c): c for c in KNOWN_CLASSES}


def class_patterns(classes: Sequence[str]) -> list[str]:
    """Map each requested class name to the canonical pattern it draws; unknown names raise."""
    patterns = []
    for name in classes:
        canonical = _PATTERNS.get(_norm_name(name))
        if canonical is None:
            raise ValueError(f"synthetic data has no class {name!r}; known classes: {', '.join(KNOWN_CLASSES)}")
        patterns.append(canonical)
    if len(set(patterns)) != len(patterns):
        raise ValueError(f"classes {tuple(classes)} name the same synthetic class twice")
    return patterns


def _per_class(values, n_classes: int, what: str) -> np.ndarray:
    if values is None:
        return np.zeros(n_classes)
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.full(n_classes, float(arr[0]))
    if arr.size != n_classes:
        raise ValueError(f"{what} has {arr.size} values but there are {n_classes} classes")
    return arr


@dataclasses.dataclass(frozen=True)
class SyntheticSource:
    """Draws synthetic image `index` on its own (picklable, so worker processes can draw in parallel). Image i uses its
    own RNG seeded by (seed, i) and its label is i % len(classes), so any subset is reproducible on its own."""

    image_size: int
    classes: tuple[str, ...]
    seed: int
    difficulty: float = 0.5
    marker_rate: tuple[float, ...] | float | None = None
    intensity_shift: tuple[float, ...] | float | None = None
    sites: tuple | None = None  # data.spec.SiteSpec per site (they then give markers, brightness and noise)
    index_start: int = 0  # image i of this source is drawn as image index_start + i (external sets: data.sites)

    def __post_init__(self):
        class_patterns(self.classes)
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {self.difficulty}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        rates = _per_class(self.marker_rate, len(self.classes), "marker_rate")
        if np.any((rates < 0) | (rates > 1)):
            raise ValueError(f"marker_rate values must be probabilities in [0, 1], got {tuple(rates)}")
        _per_class(self.intensity_shift, len(self.classes), "intensity_shift")
        if self.sites:
            for site in self.sites:
                check_site(site, len(self.classes))
            object.__setattr__(self, "_site_probs", site_probabilities(self.sites, len(self.classes)))

    def site(self, index: int):
        """The SiteSpec that makes image `index` (None without sites)."""
        if not self.sites:
            return None
        return self.sites[site_of(self.seed, index, self.label(index), self._site_probs)]

    def habits(self, index: int) -> tuple[float, float, float]:
        """(marker probability, brightness offset, extra noise sd) of image `index`: its site's, else its class's."""
        label, site = self.label(index), self.site(index)
        if site is not None:
            return float(per_class(site.marker_rate, len(self.classes), "marker_rate")[label]), \
                float(site.intensity_shift), float(site.noise)
        return (float(_per_class(self.marker_rate, len(self.classes), "marker_rate")[label]),
                float(_per_class(self.intensity_shift, len(self.classes), "intensity_shift")[label]), 0.0)

    def label(self, index: int) -> int:
        return index % len(self.classes)

    @staticmethod
    def image_id(index: int) -> str:
        return f"synthetic-{index:06d}"

    def __call__(self, index: int) -> dict:
        """{'image': uint8 (s,s), 'lesion_mask': bool (s,s), 'marker_box': int32 (4,) [y0,x0,y1,x1) or -1,
        'label': int, 'id': str}."""
        drawn = self.draw(self.index_start + index)
        drawn.pop("lung_mask")
        return drawn

    def draw(self, index: int, *, marker: bool = True, shift: bool = True) -> dict:
        """Image `index` (absolute, index_start not added) with its lung field mask ('lung_mask'); marker=False
        draws it without its burnt-in marker, shift=False without its brightness offset: everything else identical."""
        s = self.image_size
        grid = (np.arange(s, dtype=np.float32) + 0.5) / s * 2.0 - 1.0
        yy, xx = np.meshgrid(grid, grid, indexing="ij")
        rng = np.random.default_rng((self.seed, index))
        label = self.label(index)
        rate, offset, noise = self.habits(index)
        image, mask, lungs = _draw_chest(rng, xx, yy, class_patterns(self.classes)[label], self.difficulty)
        if shift:
            image = image + offset
        if noise > 0:
            image = image + site_noise(self.seed, index, image.shape, noise)
        image8 = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
        box = np.full(4, -1, np.int32)
        if rng.random() < rate and marker:
            box = _burn_marker(rng, image8)
        return {"image": image8, "lesion_mask": mask, "lung_mask": lungs > 0.5, "marker_box": box, "label": label,
                "id": self.image_id(index)}


def generate(
    n: int,
    *,
    image_size: int,
    classes: Sequence[str],
    seed: int,
    difficulty: float = 0.5,
    marker_rate: Sequence[float] | float | None = None,
    intensity_shift: Sequence[float] | float | None = None,
    start: int = 0,
) -> dict:
    """Generate images start..start+n-1 in memory (see SyntheticSource; data prepare streams them instead).
    Returns a dict of numpy arrays: images uint8 (n,H,W), labels int32 (n,), lesion_masks bool (n,H,W),
    marker_boxes int32 (n,4) [y0,x0,y1,x1) in pixels (-1 when no marker), ids str (n,)."""
    source = SyntheticSource(image_size, tuple(classes), seed, difficulty, _tuple(marker_rate), _tuple(intensity_shift))
    s = image_size
    out = {"images": np.empty((n, s, s), np.uint8), "labels": np.empty(n, np.int32),
           "lesion_masks": np.empty((n, s, s), bool), "marker_boxes": np.full((n, 4), -1, np.int32)}
    ids = []
    for k in range(n):
        example = source(start + k)
        out["images"][k], out["lesion_masks"][k] = example["image"], example["lesion_mask"]
        out["labels"][k], out["marker_boxes"][k] = example["label"], example["marker_box"]
        ids.append(example["id"])
    out["ids"] = np.array(ids, dtype=str)
    return out


def _tuple(values):
    if values is None or np.isscalar(values):
        return values
    return tuple(float(v) for v in values)


def _smooth_noise(rng, shape, cells: int) -> np.ndarray:
    """Zero-mean, unit-ish smooth noise: coarse gaussian grid upsampled (a cheap stand-in for Perlin noise)."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _ellipse(x, y, cx, cy, ax, ay, edge=0.08) -> np.ndarray:
    """Soft-edged filled ellipse in [0,1]."""
    r = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)
    return np.clip((1.0 - r) / edge, 0.0, 1.0)


def _draw_chest(rng, xx, yy, pattern: str, difficulty: float):
    """One image in [0,1] floats, plus its lesion mask. Coordinates are in [-1,1], y down."""
    # pose: small rotation, scale and shift of the patient relative to the detector
    angle = rng.uniform(-0.09, 0.09)
    scale = rng.uniform(0.88, 1.05)
    dx, dy = rng.uniform(-0.06, 0.06, size=2)
    c, s_ = np.cos(angle), np.sin(angle)
    x = (c * xx + s_ * yy) / scale - dx
    y = (-s_ * xx + c * yy) / scale - dy

    body = _ellipse(x, y, 0.0, 0.1, 0.92, 1.05, edge=0.1)
    image = 0.08 + 0.42 * body
    # lungs: dark fields, domes of the diaphragm cut their lower edge
    lung_w, lung_h = rng.uniform(0.26, 0.32), rng.uniform(0.55, 0.65)
    left = _ellipse(x, y, -0.40, -0.05, lung_w, lung_h, edge=0.12)
    right = _ellipse(x, y, 0.40, -0.05, lung_w, lung_h, edge=0.12)
    dome = 0.42 + 0.25 * (x**2) + rng.uniform(-0.05, 0.05)
    below = np.clip((y - dome) / 0.08, 0.0, 1.0)
    lungs = np.maximum(left, right) * (1.0 - below)
    image -= 0.26 * lungs
    # spine/mediastinum and heart shadow (bright, overlapping the left lung on the image's right)
    spine = np.clip(1.0 - np.abs(x) / 0.11, 0.0, 1.0) * body
    image += 0.22 * spine
    heart = _ellipse(x, y, rng.uniform(0.1, 0.18), 0.28, rng.uniform(0.2, 0.26), 0.2, edge=0.2)
    image += 0.24 * heart * (1.0 - below)
    # ribs: bright curved bands across the chest
    rib_freq = rng.uniform(5.5, 7.0)
    rib_phase = rng.uniform(0, 2 * np.pi)
    ribs = np.cos((y + 0.35 * x**2) * rib_freq * np.pi + rib_phase)
    image += 0.06 * np.clip(ribs, 0.0, 1.0) ** 2 * body * (1.0 - below)
    # abdomen below the diaphragm
    image += 0.12 * below * body

    # lesions draw from their own stream, so one pose/anatomy/noise draw renders identically with or without them
    lesion_rng = np.random.default_rng(rng.integers(2**63))
    lesion, mask = _draw_lesions(lesion_rng, x, y, lungs, pattern, left, right)
    # difficulty trades lesion strength for noise; a per-image severity spreads cases from subtle to obvious
    severity = rng.uniform(0.3, 1.0)
    amplitude = (0.28 - 0.2 * difficulty) * severity
    image += amplitude * lesion

    # acquisition: exposure/contrast, gamma, structured and white noise, slight blur
    image = image * rng.uniform(0.85, 1.15) + rng.uniform(-0.06, 0.06)
    image = np.clip(image, 0.0, 1.0) ** rng.uniform(0.8, 1.25)
    noise_sigma = 0.015 + 0.05 * difficulty
    image += noise_sigma * _smooth_noise(rng, x.shape, 8) + noise_sigma * rng.standard_normal(x.shape)
    image = cv2.GaussianBlur(image.astype(np.float32), (3, 3), 0.6)
    return image, mask, lungs


def _draw_lesions(rng, x, y, lungs, pattern: str, left, right):
    """Lesion intensity field (>= 0) and its boolean mask, confined to the lungs."""
    zero = np.zeros_like(x)
    if pattern == "Normal":
        return zero, zero.astype(bool)
    inside = lungs > 0.3
    if pattern == "COVID":
        # bilateral, peripheral, lower-zone ground-glass: soft blobs near the lateral edges, low in each lung
        field = zero.copy()
        for side in (-1.0, 1.0):
            for _ in range(rng.integers(1, 3)):
                cx = side * rng.uniform(0.5, 0.62)
                cy = rng.uniform(0.1, 0.4)
                r = rng.uniform(0.12, 0.2)
                field = np.maximum(field, np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))))
        texture = 0.6 + 0.4 * np.clip(_smooth_noise(rng, x.shape, 20), -1.0, 1.0)  # granular ground glass
        field = field * texture * lungs
    elif pattern == "Viral Pneumonia":
        # diffuse interstitial: a reticular (net-like) texture over both lungs, strongest around the hila
        envelope = np.exp(-((np.abs(x) - 0.3) ** 2 + (y - 0.05) ** 2) / (2 * 0.3**2))
        net = np.abs(_smooth_noise(rng, x.shape, 16))
        reticular = np.clip(1.0 - net / 0.6, 0.0, 1.0)
        field = (0.35 + 0.65 * reticular) * envelope * lungs
    elif pattern == "Lung_Opacity":
        # focal consolidation: one dense, sharper-edged patch in one lung
        side = rng.choice((-1.0, 1.0))
        cx, cy = side * rng.uniform(0.3, 0.5), rng.uniform(-0.3, 0.3)
        rx, ry = rng.uniform(0.1, 0.18), rng.uniform(0.1, 0.2)
        field = _ellipse(x, y, cx, cy, rx, ry, edge=0.4) * 1.4 * (left if side < 0 else right)
    else:  # pragma: no cover - class_patterns() guards this
        raise AssertionError(pattern)
    mask = (field > 0.25 * max(float(field.max()), 1e-6)) & inside
    return field, mask


def _burn_marker(rng, image8: np.ndarray) -> np.ndarray:
    """Burn a bright text marker into a random corner (in place); return its box [y0,x0,y1,x1)."""
    s = image8.shape[0]
    up = max(1, -(-128 // s))  # draw at >= 128 px and downsample, so small images still get solid strokes
    big = s * up
    text = MARKER_TEXTS[rng.integers(len(MARKER_TEXTS))]
    font = cv2.FONT_HERSHEY_SIMPLEX
    thickness = max(1, big // 96)
    (w1, h1), _ = cv2.getTextSize(text, font, 1.0, thickness)
    scale = min(0.11 * big / h1, 0.42 * big / w1)
    (w, h), base = cv2.getTextSize(text, font, scale, thickness)
    margin = max(1, big // 32)
    corner = rng.integers(4)
    x0 = margin if corner in (0, 2) else big - margin - w
    y_base = margin + h if corner in (0, 1) else big - margin - base
    canvas = np.zeros((big, big), np.uint8)
    cv2.putText(canvas, text, (int(x0), int(y_base)), font, scale, 255, thickness, cv2.LINE_AA)
    if up > 1:
        canvas = cv2.resize(canvas, (s, s), interpolation=cv2.INTER_AREA)
        canvas = np.where(canvas >= 64, 255, 0).astype(np.uint8)
    ys, xs = np.nonzero(canvas >= 64)
    if ys.size == 0:
        return np.full(4, -1, np.int32)
    image8[:] = np.maximum(image8, canvas)
    return np.array([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1], np.int32)


def image_id(index: int) -> str:
    return SyntheticSource.image_id(index)


def sources_by_id(data: dict) -> dict[str, str]:
    """image id -> site name for every image of a synthetic dataset (its DataSpec as a dict, e.g. from a manifest)."""
    sites = [SiteSpec(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in s.items()}) for s in data["sites"]]
    classes = data["classes"]
    probs = site_probabilities(sites, len(classes))
    seed = int(data.get("synthetic_seed", 0))
    n = int(data["num_images"]) if not data.get("subset") else min(int(data["num_images"]),
                                                                    int(data["subset"]) * len(classes))
    return {image_id(i): sites[site_of(seed, i, i % len(classes), probs)].name for i in range(n)}


def image_index(image_id_: str) -> int:
    """The generator's index of a synthetic image id ('synthetic-000123' -> 123)."""
    prefix = "synthetic-"
    if not str(image_id_).startswith(prefix) or not str(image_id_)[len(prefix):].isdigit():
        raise ValueError(f"{image_id_!r} is not a synthetic image id (synthetic-<index>)")
    return int(str(image_id_)[len(prefix):])


def source_of(spec, sites=None, index_start: int = 0) -> SyntheticSource:
    """The SyntheticSource of a synthetic DataSpec (its own sites unless `sites` is given)."""
    return SyntheticSource(spec.image_size, tuple(spec.classes), spec.synthetic_seed, spec.difficulty,
                           _tuple(spec.marker_rate), _tuple(spec.intensity_shift),
                           tuple(sites) if sites else (tuple(spec.sites) if spec.sites else None), index_start)


def regenerate(spec, ids, *, markers: bool = True, shift: bool = True) -> dict:
    """Images of a synthetic DataSpec drawn again by id (the same pixels as prepared, unless markers=False or
    shift=False), with their lesion masks, lung field masks and marker boxes, as arrays in `ids` order."""
    source = source_of(spec)
    drawn = [source.draw(image_index(i), marker=markers, shift=shift) for i in ids]
    s = spec.image_size
    return {"images": np.stack([d["image"] for d in drawn]) if drawn else np.zeros((0, s, s), np.uint8),
            "labels": np.array([d["label"] for d in drawn], np.int32),
            "lesion_masks": np.stack([d["lesion_mask"] for d in drawn]) if drawn else np.zeros((0, s, s), bool),
            "lung_masks": np.stack([d["lung_mask"] for d in drawn]) if drawn else np.zeros((0, s, s), bool),
            "marker_boxes": np.stack([d["marker_box"] for d in drawn]) if drawn else np.zeros((0, 4), np.int32),
            "ids": np.asarray([str(i) for i in ids], dtype=str)}


def counterfactual_ids(spec, ids, marker_boxes, *, markers: bool = True, shift: bool = True) -> list[str]:
    """The images among `ids` that a counterfactual copy changes: those carrying a marker (markers=False), or
    those whose site or class shifts their brightness (shift=False)."""
    source = source_of(spec)
    out = []
    for k, i in enumerate(ids):
        if not markers and marker_boxes is not None and int(np.asarray(marker_boxes)[k][0]) >= 0:
            out.append(str(i))
        elif not shift and source.habits(image_index(i))[1] != 0.0:
            out.append(str(i))
    return out


def draw_site(spec, site, n: int, name: str) -> dict:
    """`n` images of one synthetic site, drawn with the sweep's generator settings from a block of indices that the
    sweep's own images never use (data.sites.external_start): an external evaluation set."""
    source = source_of(spec, sites=(site,), index_start=external_start(name))
    drawn = [source(k) for k in range(n)]
    return {"images": np.stack([d["image"] for d in drawn]), "labels": np.array([d["label"] for d in drawn], np.int32),
            "ids": np.array([d["id"] for d in drawn], dtype=str), "groups": np.array([d["id"] for d in drawn], dtype=str),
            "marker_boxes": np.stack([d["marker_box"] for d in drawn])}
