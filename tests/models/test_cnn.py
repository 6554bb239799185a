"""The seed's CNN: every Keras layer's cumulative params and shape, Keras numerics, train/eval behaviour."""
from __future__ import annotations

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.cnn import CNN_LAYERS, TorresCNN
from models.profile import count_params
from tests.keras_made import table_rows


# the first test of a session may wait for Keras to make the reference (tens of seconds on a loaded machine;
# cached afterwards in pytest's cache)
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def rows(keras_tables) -> list[dict]:
    """Keras's own table of the model (tests/keras_made.py), made at test time and cached between sessions."""
    return table_rows(keras_tables / "torres_cnn_layers.csv")


def shape_str(shape) -> str:
    return "x".join(str(d) for d in shape)


def test_layer_names_are_keras_names_in_order(rows):
    assert CNN_LAYERS == tuple(row["layer"] for row in rows)


@pytest.mark.parametrize("layer", CNN_LAYERS)
def test_cut_matches_keras(rows, layer):
    row = next(row for row in rows if row["layer"] == layer)
    model = nnx.eval_shape(lambda: TorresCNN(cut=row["layer"], rngs=nnx.Rngs(0)))
    counts = count_params(model)
    assert (counts.total, counts.non_trainable) == (int(row["cumulative_params"]), int(row["cumulative_non_trainable"]))
    assert shape_str(model.output_shape) == row["output_shape"]


def test_traced_forward_gives_every_reference_shape(rows):
    model = nnx.eval_shape(lambda: TorresCNN(rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    feats = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s).features(x), state,
                           jax.ShapeDtypeStruct((2, 256, 256, 3), jnp.float32))
    assert {name: shape_str(f.shape[1:]) for name, f in feats.items()} == {r["layer"]: r["output_shape"] for r in rows}


@pytest.fixture(scope="module")
def small_cnn() -> TorresCNN:
    """The full classifier at 32x32 (the smallest size its five pools allow), initialised in one compile."""
    return nnx.jit(lambda: TorresCNN(num_classes=3, image_size=32, rngs=nnx.Rngs(params=0, dropout=1)))()


def test_keras_numerics(small_cnn):
    bn = small_cnn.block1_bn
    assert (bn.momentum, bn.epsilon) == (0.99, 1e-3)
    kernel = np.asarray(small_cnn.block2_conv.kernel[...])
    assert kernel.shape == (5, 5, 32, 64)  # Keras (kh, kw, in, out)
    limit = np.sqrt(6.0 / (5 * 5 * 32 + 5 * 5 * 64))  # glorot uniform
    assert 0.9 * limit < np.abs(kernel).max() <= limit
    assert not np.any(np.asarray(small_cnn.block2_conv.bias[...]))
    assert not np.any(np.asarray(small_cnn.predictions.bias[...]))
    assert [small_cnn.block1_drop.rate, small_cnn.block3_drop.rate, small_cnn.dropout.rate] == [0.2, 0.3, 0.5]


def test_jitted_step_over_split_state_in_both_modes(small_cnn):
    """The training loop's pattern: jax.jit over nnx.split state; train mode draws dropout masks and moves
    BatchNorm statistics, eval mode is deterministic and leaves them alone."""
    x = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3))

    def stepper(model):
        graphdef, state = nnx.split(model)

        @jax.jit
        def step(state, x):
            module = nnx.merge(graphdef, state)
            return module(x), nnx.state(module)

        return step, state

    small_cnn.train()
    step, state = stepper(small_cnn)
    a, state = step(state, x)
    b, state = step(state, x)
    assert a.shape == (4, 3) and a.dtype == jnp.float32
    assert not np.allclose(a, b)  # the dropout RNG advanced inside the jitted step
    assert not np.allclose(np.asarray(state["block1_bn"]["mean"][...]), 0)  # running stats moved

    small_cnn.eval()
    step, state = stepper(small_cnn)
    a, new_state = step(state, x)
    b, _ = step(new_state, x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(new_state["block1_bn"]["mean"][...]),
                                  np.asarray(state["block1_bn"]["mean"][...]))


def test_cut_builds_only_the_layers_it_needs():
    model = nnx.eval_shape(lambda: TorresCNN(cut="block2_bn", image_size=32, rngs=nnx.Rngs(0)))
    assert set(model.keras_layers()) == {"block1_conv", "block1_bn", "block2_conv", "block2_bn"}
    assert model.output_shape == (16, 16, 64)


def test_keras_layers_map_names_to_weight_modules(small_cnn):
    layers = small_cnn.keras_layers()
    assert list(layers) == [n for n in CNN_LAYERS if n.endswith(("_conv", "_bn")) or n in ("dense", "predictions")]
    assert isinstance(layers["block3_conv"], nnx.Conv) and isinstance(layers["block3_bn"], nnx.BatchNorm)
    assert isinstance(layers["predictions"], nnx.Linear)
