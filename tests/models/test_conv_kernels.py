"""Every conv form computes XLA's convolution and its gradients (within 1e-4), and the models built with the
per-layer forms give the same logits and gradients as with XLA's convolution everywhere."""
from __future__ import annotations

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import models.conv_kernels as kernels
from models.registry import build_model

SHAPES = [  # (size, channels, features, kernel, stride, padding): the seed models' kinds of conv
    (16, 3, 8, 3, 1, "SAME"), (12, 4, 6, 5, 1, "SAME"), (9, 8, 16, 3, 2, "VALID"), (11, 3, 8, 7, 2, "VALID"),
    (6, 16, 32, 3, 1, "SAME"), (8, 8, 16, 1, 1, "VALID"),
    # SAME with stride 2 (no seed model has one; another backbone will): even and odd maps, odd and even kernels
    (8, 4, 8, 3, 2, "SAME"), (7, 4, 8, 3, 2, "SAME"), (9, 3, 4, 7, 2, "SAME"), (6, 4, 4, 2, 2, "SAME"),
    (5, 4, 8, 1, 2, "SAME"), (10, 4, 4, 5, 3, "SAME"),
]


def _close(got, want, tol=1e-4):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    np.testing.assert_allclose(got, want, atol=tol * max(1.0, np.abs(want).max()), rtol=0)


# each way of computing the forward, dx and dw appears at least once (the rest combine them)
CHECKED_FORMS = ("im2col", "xla/im2col/im2col_per_image", "im2col/xla/xla", "xla/xla/im2col")


@pytest.mark.parametrize("form", CHECKED_FORMS)
@pytest.mark.parametrize("size,channels,features,kernel,stride,padding", SHAPES)
def test_each_form_is_the_xla_convolution_and_its_gradients(form, size, channels, features, kernel, stride, padding):
    key_x, key_w, key_g = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(key_x, (3, size, size, channels))
    w = jax.random.normal(key_w, (kernel, kernel, channels, features)) * 0.2
    out = kernels.output_size(size, kernel, stride, padding)
    cotangent = jax.random.normal(key_g, (3, out, out, features))

    def run(form):
        y, vjp = jax.vjp(lambda x, w: kernels.conv2d(x, w, stride=stride, padding=padding, form=form), x, w)
        return (y, *vjp(cotangent))

    for got, want in zip(jax.jit(run, static_argnums=0)(form), jax.jit(run, static_argnums=0)("xla")):
        _close(got, want)


@pytest.mark.parametrize("size,kernel,stride", [(s, k, st) for s in (1, 2, 5, 8, 9) for k in (1, 2, 3, 7)
                                                 for st in (2, 3)])
def test_same_padding_is_xlas(size, kernel, stride):
    """The im2col form pads as XLA's SAME does (odd pixel low/high), so the forward matches for every size."""
    x = jax.random.normal(jax.random.key(2), (1, size, size, 2))
    w = jax.random.normal(jax.random.key(3), (kernel, kernel, 2, 3))
    _close(kernels.conv2d(x, w, stride=stride, padding="SAME", form="im2col"),
           kernels.conv2d(x, w, stride=stride, padding="SAME", form="xla"))


def test_a_chosen_form_wins_over_the_rule_for_its_phase_only():
    key = kernels.layer_key((32, 64, 64, 16), (3, 3, 16, 16), 1, "SAME", jnp.float32)
    assert kernels.form_for(64, 3, 1, "SAME", "cpu", key=key) == "xla/xla/im2col_per_image"  # the rule
    with kernels.use_forms({"train": {key: "im2col"}, "inference": {key: "xla"}}):
        assert kernels.form_for(64, 3, 1, "SAME", "cpu", key=key) == "im2col"
        with kernels.program_phase("inference"):
            assert kernels.form_for(64, 3, 1, "SAME", "cpu", key=key) == "xla"
        other = kernels.layer_key((16, 64, 64, 16), (3, 3, 16, 16), 1, "SAME", jnp.float32)  # another batch
        assert kernels.form_for(64, 3, 1, "SAME", "cpu", key=other) == "xla/xla/im2col_per_image"
        assert kernels.form_for(64, 3, 1, "SAME", "gpu", key=key) == "xla"
    assert kernels.form_for(64, 3, 1, "SAME", "cpu", key=key) == "xla/xla/im2col_per_image"


def test_forms_are_every_plan_of_forward_dx_and_dw():
    assert len(kernels.FORMS) == 2 * 2 * 3 and set(CHECKED_FORMS) <= set(kernels.FORMS)


def test_unknown_form_names_the_choices():
    with pytest.raises(ValueError, match="xla, im2col"):
        kernels.conv2d(jnp.zeros((1, 4, 4, 1)), jnp.zeros((3, 3, 1, 1)), stride=1, padding="SAME", form="fft")


def test_cpu_picks_a_form_by_output_size_and_gpu_keeps_xla():
    assert kernels.form_for(64, 3, 1, "SAME", "cpu") == "xla/xla/im2col_per_image"  # 64x64 out
    assert kernels.form_for(4, 3, 1, "SAME", "cpu") == "im2col"  # 4x4 out
    assert kernels.form_for(64, 1, 1, "VALID", "cpu") == "im2col"  # 1x1: a matmul
    assert kernels.form_for(8, 5, 1, "SAME", "cpu") == "xla"  # 8x8 out, but a 5x5 kernel
    assert kernels.form_for(4, 5, 1, "SAME", "cpu") == "im2col"  # 4x4 out: any kernel as one matmul
    assert kernels.form_for(4, 3, 1, "SAME", "gpu") == "xla" and kernels.form_for(64, 3, 1, "SAME", "gpu") == "xla"


@pytest.mark.parametrize("name,forms_used", [
    ("cnn", {"xla/xla/im2col_per_image", "im2col"}),
    # a few minutes to compile on 2 cores; its 7x7/2 stem (38 -> 16x16 at 32 px) takes the per-image weight gradient
    pytest.param("resnet50v2", {"im2col", "xla/xla/im2col_per_image"}, marks=pytest.mark.slow),
])
def test_models_match_xla_convolutions_everywhere(name, forms_used, monkeypatch):
    size = 32
    images = jax.random.uniform(jax.random.key(1), (2, size, size, 3))
    labels = jnp.array([0, 1])

    def logits_and_grads():
        model = build_model(name, image_size=size, rngs=nnx.Rngs(0))
        model.eval()  # BatchNorm on its moving statistics, no dropout: deterministic
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        def loss(params):
            logits = nnx.merge(graphdef, params, rest)(images)
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), labels]), logits

        (_, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
        return logits, grads

    forms = []
    picked = kernels.cpu_form
    monkeypatch.setattr(kernels, "cpu_form", lambda *a: forms.append(picked(*a)) or forms[-1])
    ours = logits_and_grads()
    monkeypatch.setattr(kernels, "cpu_form", lambda *a: "xla")
    reference = logits_and_grads()
    assert set(forms) == forms_used
    _close(ours[0], reference[0])
    for got, want in zip(jax.tree.leaves(ours[1]), jax.tree.leaves(reference[1])):
        _close(got, want)
