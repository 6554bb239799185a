"""The confound probe finds planted source cues (burnt-in markers, a brightness offset) and nothing where there
are none; its folds never split a patient."""
from __future__ import annotations

import numpy as np
import pytest

from data.synthetic import generate
from sweep.analysis import confound


def _probe(images, labels, groups):
    return confound.probe(confound.features_of(images), labels, groups, ("COVID", "Normal"), n_boot=300)


def test_probe_finds_a_marker_burnt_into_one_class():
    d = generate(160, image_size=32, classes=("COVID", "Normal"), seed=0, difficulty=1.0, marker_rate=(0.9, 0.0))
    result = _probe(d["images"], d["labels"], d["ids"])
    assert result["auc"] > 0.85 and result["lo"] > 0.75
    assert result["n_images"] == 160 and result["features"] == list(confound.FEATURE_GROUPS)


def test_probe_finds_a_brightness_offset_of_one_class():
    d = generate(160, image_size=32, classes=("COVID", "Normal"), seed=1, difficulty=1.0, intensity_shift=(0.12, 0.0))
    assert _probe(d["images"], d["labels"], d["ids"])["lo"] > 0.75


def test_probe_is_at_chance_without_a_cue():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(200, 24, 24), dtype=np.uint8)
    result = _probe(images, rng.integers(0, 2, size=200), np.arange(200).astype(str))
    assert result["lo"] < 0.5 < result["hi"] and abs(result["auc"] - 0.5) < 0.12


def test_folds_keep_each_patient_on_one_side():
    labels = np.repeat([0, 1], 60)
    groups = np.array([f"p{i // 3}" for i in range(120)])
    folds = confound._folds(labels, groups, seed=0)
    assert len(folds) == confound.FOLDS
    assert sorted(np.concatenate([held for _, held in folds]).tolist()) == list(range(120))  # each image held once
    for train, held in folds:
        assert not set(groups[train]) & set(groups[held])
        assert abs(labels[held].mean() - 0.5) < 0.15  # stratified: both classes in every held-out fold


def test_share_of_model_auc():
    assert confound.share_of_model_auc(0.8, 0.9) == pytest.approx(0.75)
    assert np.isnan(confound.share_of_model_auc(0.8, 0.5))
