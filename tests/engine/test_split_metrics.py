"""Metrics of external and counterfactual splits in trials.csv's names, shortcut reliance included."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from sweep.engine.split_metrics import split_metrics

CLASSES = ("COVID", "Normal")


def _scored(labels, preds):
    probs = np.eye(2)[np.asarray(preds)] * 0.8 + 0.1
    return SimpleNamespace(labels=np.asarray(labels), probs=probs)


def test_external_and_counterfactual_columns():
    test = _scored([0, 0, 1, 1], [0, 0, 1, 0])  # the marked images t0, t1 are right
    copies = _scored([0, 0], [1, 0])  # without the marker, one of them goes wrong
    ext = _scored([1, 1, 1], [1, 0, 1])  # one class only
    metrics = split_metrics({"test": test, "ext:other_site": ext, "cf:no_marker": copies},
                            {"test": ["t0", "t1", "t2", "t3"], "ext:other_site": ["e0", "e1", "e2"],
                             "cf:no_marker": ["t0", "t1"]}, CLASSES)
    assert metrics["ext_other_site_n"] == 3 and metrics["ext_other_site_accuracy"] == pytest.approx(2 / 3)
    assert math.isnan(metrics["ext_other_site_auc"]) and math.isnan(metrics["ext_other_site_balanced_accuracy"])
    assert metrics["cf_no_marker_n"] == 2 and metrics["cf_no_marker_accuracy"] == 0.5
    assert metrics["cf_no_marker_source_accuracy"] == 1.0 and metrics["shortcut_reliance"] == 0.5


def test_a_copy_of_an_image_outside_the_test_split_is_an_error():
    with pytest.raises(ValueError, match="not in the test split, e.g. 'x9'"):
        split_metrics({"test": _scored([0], [0]), "cf:no_shift": _scored([0], [0])},
                      {"test": ["t0"], "cf:no_shift": ["x9"]}, CLASSES)
