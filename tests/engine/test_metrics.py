"""sweep.engine.metrics: the seed's report layout, per-class numbers, confusion matrix and AUC from scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest

from sweep.engine.metrics import classification_metrics, classification_report_text


def test_report_has_the_seed_layout():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    probs = np.array([[.9, .1], [.8, .2], [.3, .7], [.2, .8], [.1, .9], [.4, .6], [.6, .4], [.2, .8]])
    text = classification_report_text(labels, probs, ("COVID", "Normal"))
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[1].split() == ["COVID", "0.67", "0.67", "0.67", "3"]
    assert lines[2].split() == ["Normal", "0.80", "0.80", "0.80", "5"]
    assert lines[3].split() == ["accuracy", "0.75", "8"]
    assert lines[4].split()[:2] == ["macro", "avg"] and lines[5].split()[:2] == ["weighted", "avg"]


def test_metrics_are_flat_and_per_class():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([[.9, .1], [.4, .6], [.2, .8], [.3, .7], [.6, .4]])
    m = classification_metrics(labels, probs, ("COVID", "Normal"))
    assert m["test_accuracy"] == pytest.approx(0.6)
    assert m["test_recall_COVID"] == pytest.approx(0.5) and m["test_recall_Normal"] == pytest.approx(2 / 3)
    assert m["test_balanced_accuracy"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m["test_support_Normal"] == 3 and m["confusion_matrix"] == [[1, 1], [1, 2]]
    assert m["test_auc"] == pytest.approx(5 / 6)
    assert {"test_macro_f1", "test_weighted_precision", "classes"} <= set(m)


def test_auc_is_one_vs_rest_beyond_two_classes():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 10)
    probs = rng.dirichlet([1, 1, 1], size=30)
    probs[np.arange(30), labels] += 1.0
    probs /= probs.sum(1, keepdims=True)
    m = classification_metrics(labels, probs, ("COVID", "Normal", "Viral Pneumonia"))
    assert m["test_auc"] == pytest.approx(1.0)
    assert len(m["confusion_matrix"]) == 3


def test_bad_probability_shape_is_refused():
    with pytest.raises(ValueError, match="probs must be"):
        classification_metrics(np.array([0, 1]), np.ones((2, 3)), ("a", "b"))
