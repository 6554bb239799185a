"""report.md and report.html say which weights each model started from, from manifest.json's `init`."""
from __future__ import annotations

from sweep.analysis.init_text import starting_weights


def test_sources_paths_hashes_and_scaling_are_said():
    manifest = {"init": {
        "cnn": {"source": "scratch", "path": None, "sha256": None, "input_scaling": "unit"},
        "resnet50v2": {"source": "imagenet", "path": "/c/weights/r.h5", "sha256": "ab" * 32,
                       "input_scaling": "symmetric"}}}
    text = starting_weights(manifest)
    assert "CNN layers (the CNN parent and each fusion's CNN branch up to its cut) from scratch, input scaled to " \
           "[0, 1]" in text
    assert "ResNet50V2 layers" in text and "from imagenet (`/c/weights/r.h5`, sha256 `" + "ab" * 32 + "`)" in text
    assert "to [-1, 1]" in text


def test_a_sweep_without_init_trained_from_scratch():
    assert "every model from scratch" in starting_weights({})
