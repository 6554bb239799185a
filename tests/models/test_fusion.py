"""FusionNet and build_model: the seed's fusion to the parameter, single-branch models, branch wiring, bad specs."""
from __future__ import annotations

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.registry import build_model
from models.spec import FusionSpec
from models.cnn import TorresCNN
from models.fusion import FusionNet
from models.profile import count_params
from models.resnet_v2 import ResNet50V2

SEED_FUSION = 10_437_570


def abstract(spec_or_name, **kwargs):
    return nnx.eval_shape(lambda: build_model(spec_or_name, rngs=nnx.Rngs(0), **kwargs))


def test_seed_fusion_is_the_default_and_matches_keras():
    explicit = FusionSpec(cnn_cut="block3_drop", resnet_cut="conv3_block4_2_relu", branch_width=2048,
                          head_width=2048, cnn_branch_activation="linear", resnet_branch_activation="softmax")
    assert explicit == FusionSpec()
    assert count_params(abstract("fusion")) == (SEED_FUSION, SEED_FUSION - 8000, 8000)
    assert count_params(abstract(explicit)).total == SEED_FUSION


def test_single_branch_counts_add_up():
    cnn_cut = count_params(nnx.eval_shape(lambda: TorresCNN(cut="block4_drop", rngs=nnx.Rngs(0)))).total
    model = abstract(FusionSpec(cnn_cut="block4_drop", resnet_cut=None, branch_width=64, head_width=32))
    assert count_params(model).total == cnn_cut + (256 * 64 + 64) + (64 * 32 + 32) + (32 * 2 + 2)
    assert model.resnet is None and model.resnet_branch is None

    rn_cut = count_params(nnx.eval_shape(lambda: ResNet50V2(cut="conv2_block3_out", rngs=nnx.Rngs(0)))).total
    model = abstract(FusionSpec(cnn_cut=None, resnet_cut="conv2_block3_out", branch_width=64, head_width=32,
                                pool="flatten", num_classes=4))
    assert count_params(model).total == rn_cut + (256 * 64 + 64) + (32 * 32 * 64 * 32 + 32) + (32 * 4 + 4)


def test_build_model_names_and_sizes():
    model = abstract("fusion", num_classes=3, image_size=64, channels=1)
    assert isinstance(model, FusionNet)
    assert (model.spec.num_classes, model.spec.image_size, model.spec.channels) == (3, 64, 1)
    assert isinstance(abstract("cnn", image_size=32), TorresCNN)
    gap = abstract("resnet50v2", resnet_head="gap")
    assert isinstance(gap, ResNet50V2) and gap.head == "gap"


@pytest.fixture(scope="module")
def tiny_fusion() -> FusionNet:
    spec = FusionSpec(cnn_cut="block1_drop", resnet_cut="conv2_block1_1_relu", branch_width=8, head_width=8,
                      num_classes=3, image_size=32)
    model = nnx.jit(lambda: FusionNet(spec, rngs=nnx.Rngs(params=0, dropout=1)))()
    model.eval()
    return model


def test_resnet_x_feeds_only_the_resnet_branch(tiny_fusion):
    x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
    y = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
    forward = nnx.jit(lambda m, a, b: (m(a), m(a, resnet_x=a), m(a, resnet_x=b), m.resnet(b)))
    plain, same, other, resnet_of_y = forward(tiny_fusion, x, y)
    assert plain.shape == (2, 3) and plain.dtype == jnp.float32
    np.testing.assert_array_equal(plain, same)
    assert not np.allclose(plain, other)
    assert resnet_of_y.shape == (2, 8, 8, 64)


def test_resnet_branch_is_a_softmax_over_channels(tiny_fusion):
    x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))

    def branch(m, x):
        from models.fusion import _activate
        return _activate(m.resnet_branch(m.resnet(x)), m.spec.resnet_branch_activation)

    out = nnx.jit(branch)(tiny_fusion, x)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


def test_keras_layers_cover_backbones_and_fusion_layers(tiny_fusion):
    layers = tiny_fusion.keras_layers()
    assert set(layers) == {"block1_conv", "block1_bn", "conv1_conv", "conv2_block1_preact_bn", "conv2_block1_1_conv",
                           "conv2_block1_1_bn", "cnn_branch", "resnet_branch", "fusion_dense", "fusion_predictions"}
    assert all(isinstance(m, (nnx.Conv, nnx.BatchNorm, nnx.Linear)) for m in layers.values())


@pytest.mark.parametrize("changes, message", [
    ({"cnn_cut": None, "resnet_cut": None}, "at least one branch"),
    ({"branch_width": 0}, "branch_width must be a positive int, got 0"),
    ({"head_width": -5}, "head_width must be a positive int, got -5"),
    ({"num_classes": 1}, "num_classes must be an int >= 2, got 1"),
    ({"channels": 2}, "channels must be 1 or 3, got 2"),
    ({"pool": "max"}, "pool must be one of"),
    ({"dropout": 1.0}, "dropout must be in [0, 1)"),
    ({"resnet_branch_activation": "tanh"}, "linear, relu, softmax"),
    ({"cnn_cut": "block3_dropp"}, "closest: block3_drop"),
    ({"resnet_cut": "conv3_block4_2_rel"}, "conv3_block4_2_relu"),
    ({"cnn_cut": "block5_drop", "image_size": 16}, "image_size 16 is too small for cnn up to 'block5_pool'"),
])
def test_bad_specs_fail_with_the_value_and_the_choices(changes, message):
    with pytest.raises(ValueError) as err:
        build_model(FusionSpec().replace(**changes), rngs=nnx.Rngs(0))
    assert message in str(err.value)


@pytest.mark.parametrize("name, kwargs, message", [
    ("fusoin", {}, "unknown model 'fusoin' (did you mean 'fusion'?)"),
    ("cnn", {"num_classes": 0}, "num_classes must be an int >= 2, got 0"),
    ("cnn", {"image_size": 16}, "image_size 16 is too small for cnn"),
    ("resnet50v2", {"resnet_head": "avg"}, "resnet_head must be one of flatten, gap, got 'avg'"),
    ("resnet50v2", {"channels": 4}, "channels must be 1 or 3, got 4"),
])
def test_bad_build_arguments(name, kwargs, message):
    with pytest.raises(ValueError) as err:
        build_model(name, rngs=nnx.Rngs(0), **kwargs)
    assert message in str(err.value)


def test_bfloat16_compute_keeps_float32_params_and_logits():
    spec = FusionSpec(cnn_cut="block2_drop", resnet_cut="conv2_block1_out", branch_width=16, head_width=16,
                      image_size=16)
    build = lambda dtype: nnx.jit(lambda: build_model(spec, dtype=dtype, rngs=nnx.Rngs(0)))()  # noqa: E731
    full, half = build(None), build(jnp.bfloat16)
    full.eval(), half.eval()
    assert {leaf.dtype for leaf in jax.tree.leaves(nnx.state(half, nnx.Param))} == {jnp.dtype(jnp.float32)}
    x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
    a, b = nnx.jit(lambda m, n, x: (m(x), n(x)))(full, half, x)
    assert b.dtype == jnp.float32
    np.testing.assert_allclose(b, a, atol=0.02)
