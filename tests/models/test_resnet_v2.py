"""ResNet50V2: every Keras layer's cumulative params and shape, Keras structure and numerics, heads."""
from __future__ import annotations

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.profile import count_params
from models.resnet_v2 import RESNET50V2_LAYERS, ResNet50V2
from tests.keras_made import table_rows

# the first test of a session may wait for Keras to make the reference (tens of seconds on a loaded machine;
# cached afterwards in pytest's cache)
pytestmark = pytest.mark.timeout(600)

BACKBONE = 23_564_800
HEAD_TAIL = 2048 * 2 + 2  # Dropout -> Dense(2)


@pytest.fixture(scope="module")
def rows(keras_tables) -> list[dict]:
    """Keras's own table of the model (tests/keras_made.py), made at test time and cached between sessions."""
    return table_rows(keras_tables / "resnet50v2_layers.csv")


def shape_str(shape) -> str:
    return "x".join(str(d) for d in shape)


def test_layer_names_are_keras_names_in_order(rows):
    assert RESNET50V2_LAYERS == tuple(row["layer"] for row in rows)


@pytest.mark.parametrize("layer", RESNET50V2_LAYERS)
def test_cut_matches_keras(rows, layer):
    row = next(row for row in rows if row["layer"] == layer)
    model = nnx.eval_shape(lambda: ResNet50V2(cut=row["layer"], rngs=nnx.Rngs(0)))
    counts = count_params(model)
    assert (counts.total, counts.non_trainable) == (int(row["cumulative_params"]), int(row["cumulative_non_trainable"]))
    assert shape_str(model.output_shape) == row["output_shape"]


def test_traced_forward_gives_every_reference_shape(rows):
    model = nnx.eval_shape(lambda: ResNet50V2(head=None, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    feats = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s).features(x), state,
                           jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32))
    assert {name: shape_str(f.shape[1:]) for name, f in feats.items()} == {r["layer"]: r["output_shape"] for r in rows}


@pytest.mark.parametrize("head, total", [("flatten", BACKBONE + 8 * 8 * 2048 * 2048 + 2048 + HEAD_TAIL),
                                         ("gap", BACKBONE + 2048 * 2048 + 2048 + HEAD_TAIL),
                                         (None, BACKBONE)])
def test_heads(head, total):
    model = nnx.eval_shape(lambda: ResNet50V2(head=head, rngs=nnx.Rngs(0)))
    assert count_params(model) == (total, total - 45_440, 45_440)
    assert model.output_shape == ((2,) if head else (8, 8, 2048))


def test_keras_structure():
    """Stride in the last block of each stage, 1x1 max-pool shortcut there, conv shortcut from the
    pre-activation in each first block, explicit padding + VALID convs, eps 1.001e-5."""
    model = nnx.eval_shape(lambda: ResNet50V2(head=None, rngs=nnx.Rngs(0)))
    by_name = {layer.name: layer for layer in model.graph}
    for stage, last in ((2, 3), (3, 4), (4, 6), (5, 3)):
        strides = [by_name[f"conv{stage}_block{b}_2_conv"].stride for b in range(1, last + 1)]
        assert strides == [1] * (last - 1) + [2 if stage < 5 else 1]
        assert by_name[f"conv{stage}_block1_0_conv"].inputs == (f"conv{stage}_block1_preact_relu",)
    assert by_name["max_pooling2d_1"].inputs == ("conv3_block3_out",)
    assert (by_name["max_pooling2d_1"].kernel, by_name["max_pooling2d_1"].stride) == (1, 2)
    assert by_name["conv3_block4_out"].inputs == ("max_pooling2d_1", "conv3_block4_3_conv")
    assert all(layer.padding == "VALID" for layer in model.graph if layer.kind in ("conv", "maxpool"))
    assert by_name["pool1_pool"].inputs == ("pool1_pad",) and by_name["pool1_pad"].inputs == ("conv1_conv",)
    bn = model.conv4_block2_2_bn
    assert (bn.momentum, bn.epsilon) == (0.99, 1.001e-5)
    assert model.conv2_block1_2_conv.bias is None and model.conv2_block1_3_conv.bias is not None


def test_cut_forward_matches_the_same_layer_of_a_deeper_model():
    """A cut model computes exactly what the deeper model computes at that layer (same weights)."""
    cut = "conv2_block3_out"  # includes the stage's strided block and its max-pool shortcut
    deep = nnx.jit(lambda: ResNet50V2(cut="conv3_block1_out", image_size=32, rngs=nnx.Rngs(0)))()
    deep.eval()
    x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3), minval=-1, maxval=1)
    feats = nnx.jit(lambda m, x: m.features(x))(deep, x)
    shallow = nnx.eval_shape(lambda: ResNet50V2(cut=cut, image_size=32, rngs=nnx.Rngs(0)))
    assert set(shallow.keras_layers()) < set(deep.keras_layers())
    deep_state = nnx.state(deep)  # same layer names: take the shallow model's layers from the deep one
    nnx.update(shallow, nnx.State({name: deep_state[name] for name in nnx.state(shallow)}))
    shallow.eval()
    out = nnx.jit(lambda m, x: m(x, resnet_x=x * 0))(shallow, x)  # a parent ignores resnet_x
    assert out.shape == (2, 4, 4, 256)
    np.testing.assert_allclose(out, feats[cut], rtol=1e-5, atol=1e-5)
    # pool1 max-pools a zero-padded map: where conv1 is negative near the border the result is 0
    pooled = jax.lax.reduce_window(jnp.pad(feats["conv1_conv"], ((0, 0), (1, 1), (1, 1), (0, 0))), -jnp.inf,
                                   jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
    np.testing.assert_allclose(feats["pool1_pool"], pooled)


def test_keras_layers_map_names_to_weight_modules():
    model = nnx.eval_shape(lambda: ResNet50V2(rngs=nnx.Rngs(0)))
    layers = model.keras_layers()
    assert list(layers)[:3] == ["conv1_conv", "conv2_block1_preact_bn", "conv2_block1_1_conv"]
    assert list(layers)[-3:] == ["post_bn", "dense", "predictions"]
    assert layers["conv1_conv"].kernel.shape == (7, 7, 3, 64)
    assert isinstance(layers["post_bn"], nnx.BatchNorm) and isinstance(layers["dense"], nnx.Linear)
    assert len(layers) == 49 + 53 + 2  # BatchNorms, Conv2Ds (conv1 included), head Denses
