"""SHAP plumbing on a numpy model: the attributed class, counted evaluations, coordinates, the cost ratio."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from sweep.explain import shap_maps
from sweep.explain.predict import padded_predict

rng = np.random.default_rng(0)
WEIGHTS = rng.normal(size=(16 * 16, 3))


def linear_softmax(x):
    z = np.asarray(x, np.float64).reshape(len(x), -1) @ WEIGHTS
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


IMAGES = rng.random((2, 16, 16)).astype(np.float32)


@pytest.mark.parametrize("target", [0, 2])
def test_values_sum_to_the_target_output_change_and_evals_are_counted(target):
    (r,) = shap_maps.explain_images(linear_softmax, IMAGES[:1], labels=[target], classes=["a", "b", "c"],
                                  max_evals=100, masker="blur(4,4)")
    blurred = cv2.blur(IMAGES[0], (4, 4))[None, ..., None]
    change = linear_softmax(IMAGES[:1, ..., None])[0, target] - linear_softmax(blurred)[0, target]
    assert r.target == target and r.values.shape == (16, 16)
    assert r.values.sum() == pytest.approx(change, rel=1e-3, abs=1e-6)
    assert 0 < r.evals <= 100 and r.seconds > 0 and 0 <= r.model_seconds <= r.seconds


def test_attribution_lands_where_the_model_looks():
    def corner_model(x):  # only the top-left 4x4 corner matters, and only for class 0
        s = np.asarray(x).reshape(len(x), 16, 16)[:, :4, :4].mean((1, 2)) * 8
        return np.stack([1 / (1 + np.exp(-s)), 1 - 1 / (1 + np.exp(-s))], 1)

    image = np.zeros((1, 16, 16), np.float32)
    image[0, :4, :4] = 1.0
    (r,) = shap_maps.explain_images(corner_model, image, labels=[0], classes=["a", "b"], max_evals=200,
                                  masker="inpaint_telea")
    # the 240 other pixels share a small residual of the coarse partition levels, so not exactly 1
    assert np.abs(r.values[:4, :4]).sum() / np.abs(r.values).sum() > 0.75
    assert r.values[:4, :4].min() > np.abs(r.values[4:, 4:]).max()


def test_pred_mode_attributes_the_predicted_class():
    results = shap_maps.explain_images(linear_softmax, IMAGES, labels=[1, 1], classes=["a", "b", "c"],
                                     max_evals=20, class_mode="pred")
    assert [r.target for r in results] == list(np.argmax(linear_softmax(IMAGES[..., None]), 1))


def test_shap_overhead_reports_a_ratio_per_window():
    out = shap_maps.shap_overhead(linear_softmax, IMAGES, max_evals=30, batch_size=16, windows=3)
    assert out["evals"] == 2 * 30 and out["forward_seconds_per_image"] > 0 and out["ratio"] > 0
    assert 0 < out["model_seconds"] <= out["seconds"]  # the model's time is part of the explanation's, not beside it
    # the figures reported are those of the median window, not the first or the best
    assert len(out["ratio_windows"]) == 3 and out["ratio"] == pytest.approx(sorted(out["ratio_windows"])[1], abs=1e-4)


def test_shap_overhead_compiles_one_predict_from_a_factory():
    made = []

    def make(size):
        made.append(size)
        return padded_predict(linear_softmax, size)

    out = shap_maps.shap_overhead(None, IMAGES, max_evals=30, batch_size=16, make_predict=make)
    assert made == [16] and out["evals"] > 0
