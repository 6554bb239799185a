"""Cross-checks against ../shared/reference, where it is present: the references Keras makes here at test time
(tests/keras_made.py, Keras 3 on JAX) and the counts pinned in test_profile against the shared copies Keras 3.15 made
with TensorFlow. Every parity test runs without ../shared; this module only confirms two Keras backends agree."""
from __future__ import annotations

import json

import flax.nnx as nnx
import jax.numpy as jnp
import numpy as np
import pytest

from models.keras_weights import load_keras_weights
from models.resnet_v2 import ResNet50V2
from tests.conftest import REFERENCE_DIR
from tests.keras_made import table_rows
from tests.models.test_profile import KERAS_COUNTS_256

pytestmark = [pytest.mark.timeout(600),
              pytest.mark.skipif(not REFERENCE_DIR.is_dir(), reason=f"{REFERENCE_DIR} is absent (cross-checks only)")]
FIXTURE = "resnet50v2_conv3_fixture"


@pytest.mark.parametrize("file", ["torres_cnn_layers.csv", "resnet50v2_layers.csv"])
def test_the_layer_tables_keras_makes_here_are_the_shared_ones(keras_tables, file):
    assert table_rows(keras_tables / file) == table_rows(REFERENCE_DIR / file)


def test_the_pinned_256_px_counts_are_the_shared_ones():
    shared = json.loads((REFERENCE_DIR / "seed_models.json").read_text())
    assert {name: (c["params"], c["non_trainable"]) for name, c in shared.items()} == KERAS_COUNTS_256


def test_the_shared_keras_fixture_still_loads():
    """Its Keras-made fixture (64 px, ResNet50V2 up to conv3_block4_out) through the loader, outputs compared."""
    outputs = np.load(REFERENCE_DIR / f"{FIXTURE}.npz")
    model = ResNet50V2(cut="conv3_block4_2_relu", image_size=64, rngs=nnx.Rngs(0))
    load_keras_weights(model, REFERENCE_DIR / f"{FIXTURE}.h5")
    model.eval()
    got = np.asarray(nnx.jit(lambda m, x: m(x))(model, jnp.asarray(outputs["input"])))
    assert np.abs(got - outputs["conv3_block4_2_relu"]).max() < 1e-3
