"""The reshape/slice max-pool gives reduce_window's outputs and gradients (Keras VALID pooling, odd sizes
included), and inference programs on CPU compile without YNNPACK fusions while a user's own XLA_FLAGS win."""
from __future__ import annotations

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import models.inference_options as options
from models.build import max_pool


@pytest.mark.parametrize("size,kernel,stride", [(8, 2, 2), (9, 2, 2), (7, 1, 2), (8, 1, 2), (6, 3, 3)])
def test_max_pool_is_reduce_window_in_value_and_gradient(size, kernel, stride):
    x = jax.random.normal(jax.random.key(0), (2, size, size, 3))  # continuous values: no tied maxima
    reference = lambda x: nnx.max_pool(x, (kernel, kernel), strides=(stride, stride), padding="VALID")
    ours_y, ours_vjp = jax.vjp(lambda x: max_pool(x, kernel, stride), x)
    want_y, want_vjp = jax.vjp(reference, x)
    assert ours_y.shape == want_y.shape
    np.testing.assert_array_equal(np.asarray(ours_y), np.asarray(want_y))
    cotangent = jax.random.normal(jax.random.key(1), want_y.shape)
    np.testing.assert_allclose(np.asarray(ours_vjp(cotangent)[0]), np.asarray(want_vjp(cotangent)[0]), atol=1e-6)


def test_inference_options_turn_off_ynnpack_fusions_on_cpu(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    options.inference_compiler_options.cache_clear()
    try:
        picked = options.inference_compiler_options()
        if jax.default_backend() != "cpu":
            assert picked == {}
            return
        assert picked == options.INFERENCE_CPU_OPTIONS

        def forward(x, w):
            y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return nnx.max_pool(jax.nn.relu(y), (2, 2), strides=(2, 2))

        args = (jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 8)))
        text = jax.jit(forward, compiler_options=picked).lower(*args).compile().as_text()
        assert "__ynn_fusion" not in text
        np.testing.assert_allclose(jax.jit(forward, compiler_options=picked)(*args), jax.jit(forward)(*args))
    finally:
        options.inference_compiler_options.cache_clear()


def test_a_user_setting_of_the_option_wins(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", f"--{options.YNN_FUSION_TYPE}=LIBRARY_FUSION_TYPE_DOT")
    options.inference_compiler_options.cache_clear()
    try:
        assert options.inference_compiler_options() == {}
    finally:
        options.inference_compiler_options.cache_clear()


def test_an_option_this_jaxlib_does_not_know_falls_back_to_none(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setattr(options, "INFERENCE_CPU_OPTIONS", {"xla_cpu_no_such_option_anywhere": "1"})
    options.inference_compiler_options.cache_clear()
    try:
        assert options.inference_compiler_options() == {}
    finally:
        options.inference_compiler_options.cache_clear()
