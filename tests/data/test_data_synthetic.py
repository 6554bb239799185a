"""Synthetic chest X-rays: reproducible by seed, masks cover lesions, markers at the configured rates."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from data import synthetic

FOUR = ("COVID", "Normal", "Viral Pneumonia", "Lung_Opacity")


def test_same_seed_same_images_and_subsets_reproduce():
    a = synthetic.generate(12, image_size=32, classes=FOUR, seed=3, marker_rate=0.5)
    b = synthetic.generate(12, image_size=32, classes=FOUR, seed=3, marker_rate=0.5)
    tail = synthetic.generate(4, image_size=32, classes=FOUR, seed=3, marker_rate=0.5, start=8)
    for key in ("images", "labels", "lesion_masks", "marker_boxes", "ids"):
        np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_array_equal(a[key][8:], tail[key])
    other = synthetic.generate(12, image_size=32, classes=FOUR, seed=4)
    assert not np.array_equal(a["images"], other["images"])
    assert a["images"].dtype == np.uint8 and a["images"].shape == (12, 32, 32)
    assert list(a["ids"][:2]) == ["synthetic-000000", "synthetic-000001"]


def test_every_lesion_class_has_a_mask_and_normal_has_none():
    d = synthetic.generate(40, image_size=48, classes=FOUR, seed=0)
    for i, label in enumerate(d["labels"]):
        area = d["lesion_masks"][i].sum()
        if FOUR[label] == "Normal":
            assert area == 0
        else:
            assert area > 0, f"{FOUR[label]} image {i} has an empty lesion mask"


@pytest.mark.parametrize("pattern", ["COVID", "Viral Pneumonia", "Lung_Opacity"])
def test_mask_covers_the_drawn_lesion(pattern):
    # the same RNG draws the same anatomy, pose and noise with or without a lesion: the difference is the lesion
    s = 64
    grid = (np.arange(s, dtype=np.float32) + 0.5) / s * 2 - 1
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    for seed in range(5):
        sick, mask, _ = synthetic._draw_chest(np.random.default_rng(seed), xx, yy, pattern, 0.5)
        healthy, _, _ = synthetic._draw_chest(np.random.default_rng(seed), xx, yy, "Normal", 0.5)
        change = np.abs(sick - healthy)
        near_mask = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        # most of the lesion's signal lies in (or within 2 px of, after blur) its mask
        assert change[near_mask].sum() / change.sum() > 0.8, (pattern, seed)
        assert mask.sum() > 0


def test_markers_appear_at_configured_rates():
    n = 800
    d = synthetic.generate(n, image_size=32, classes=("COVID", "Normal"), seed=0, marker_rate=(0.6, 0.1))
    has = d["marker_boxes"][:, 0] >= 0
    for label, rate in enumerate((0.6, 0.1)):
        observed = has[d["labels"] == label].mean()
        assert abs(observed - rate) < 0.07, (label, observed, rate)
    boxes = d["marker_boxes"][has]
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    assert boxes.min() >= 0 and boxes.max() <= 32
    # the marker is burnt in bright inside its box
    i = int(np.nonzero(has)[0][0])
    y0, x0, y1, x1 = d["marker_boxes"][i]
    assert d["images"][i, y0:y1, x0:x1].max() >= 200


def test_intensity_shift_moves_class_brightness():
    base = synthetic.generate(60, image_size=32, classes=("COVID", "Normal"), seed=0)
    shifted = synthetic.generate(60, image_size=32, classes=("COVID", "Normal"), seed=0, intensity_shift=(0.1, 0.0))
    covid = base["labels"] == 0
    diff = shifted["images"].astype(float).mean((1, 2)) - base["images"].astype(float).mean((1, 2))
    assert diff[covid].mean() > 15 and abs(diff[~covid].mean()) < 1e-9


def test_unknown_class_lists_known_ones():
    with pytest.raises(ValueError, match="known classes: COVID, Normal, Viral Pneumonia, Lung_Opacity"):
        synthetic.generate(2, image_size=32, classes=("COVID", "Flu"), seed=0)
    # matched case-insensitively, ignoring separators
    synthetic.generate(2, image_size=32, classes=("covid", "lung opacity"), seed=0)
