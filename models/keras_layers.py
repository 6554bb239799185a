"""nnx modules for the Keras layers nnx lacks, holding their weights in Keras' shapes (so files load as they are):
DepthwiseConv2D, SeparableConv2D (depth multiplier 1) and an adapted Normalization."""
from __future__ import annotations

import flax.nnx as nnx
import jax
import jax.numpy as jnp
from jax import lax

_DIMS = ("NHWC", "HWIO", "NHWC")


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: str) -> jax.Array:
    """Keras' depthwise conv: kernel (k, k, C, 1), one filter per input channel."""
    k, _, channels, _ = kernel.shape
    return lax.conv_general_dilated(x, kernel.reshape(k, k, 1, channels), (stride, stride), padding,
                                    dimension_numbers=_DIMS, feature_group_count=channels)


def _compute(dtype, x, *weights):
    dtype = dtype or jnp.result_type(x, *weights)
    return [a.astype(dtype) for a in (x, *weights)]


class DepthwiseConv(nnx.Module):
    """keras.layers.DepthwiseConv2D: `kernel` (k, k, C, 1), optional `bias` (C,)."""

    def __init__(self, channels: int, kernel: int, *, stride: int = 1, padding: str = "VALID",
                 use_bias: bool = True, dtype=None, rngs):
        self.stride, self.padding, self.dtype = stride, padding, dtype
        self.kernel = nnx.Param(nnx.initializers.glorot_uniform()(rngs.params(), (kernel, kernel, channels, 1)))
        self.bias = nnx.Param(jnp.zeros((channels,))) if use_bias else nnx.data(None)

    def keras_slots(self) -> list[tuple[str, nnx.Variable]]:
        return [(name, var) for name, var in (("kernel", self.kernel), ("bias", self.bias)) if var is not None]

    def __call__(self, x: jax.Array) -> jax.Array:
        x, kernel = _compute(self.dtype, x, self.kernel[...])
        y = depthwise_conv(x, kernel, self.stride, self.padding)
        return y + self.bias[...].astype(y.dtype) if self.bias is not None else y


class SeparableConv(nnx.Module):
    """keras.layers.SeparableConv2D: depthwise (k, k, C, 1) with the stride and padding, then pointwise
    (1, 1, C, F), optional `bias` (F,)."""

    def __init__(self, channels: int, features: int, kernel: int, *, stride: int = 1, padding: str = "VALID",
                 use_bias: bool = True, dtype=None, rngs):
        self.stride, self.padding, self.dtype = stride, padding, dtype
        glorot = nnx.initializers.glorot_uniform()
        self.depthwise_kernel = nnx.Param(glorot(rngs.params(), (kernel, kernel, channels, 1)))
        self.pointwise_kernel = nnx.Param(glorot(rngs.params(), (1, 1, channels, features)))
        self.bias = nnx.Param(jnp.zeros((features,))) if use_bias else nnx.data(None)

    def keras_slots(self) -> list[tuple[str, nnx.Variable]]:
        slots = [("depthwise_kernel", self.depthwise_kernel), ("pointwise_kernel", self.pointwise_kernel),
                 ("bias", self.bias)]
        return [(name, var) for name, var in slots if var is not None]

    def __call__(self, x: jax.Array) -> jax.Array:
        x, depthwise, pointwise = _compute(self.dtype, x, self.depthwise_kernel[...], self.pointwise_kernel[...])
        y = depthwise_conv(x, depthwise, self.stride, self.padding)
        y = lax.conv_general_dilated(y, pointwise, (1, 1), "VALID", dimension_numbers=_DIMS)
        return y + self.bias[...].astype(y.dtype) if self.bias is not None else y


class Normalization(nnx.Module):
    """keras.layers.Normalization(axis=-1) as loaded from a file: (x - mean) / max(sqrt(variance), epsilon).
    mean, variance and the adapt `count` are non-trainable (nnx.BatchStat), as Keras counts them."""

    def __init__(self, channels: int, *, epsilon: float = 1e-7, dtype=None):
        self.epsilon, self.dtype = epsilon, dtype
        self.mean = nnx.BatchStat(jnp.zeros((channels,)))
        self.variance = nnx.BatchStat(jnp.ones((channels,)))
        self.count = nnx.BatchStat(jnp.zeros(()))

    def keras_slots(self) -> list[tuple[str, nnx.Variable]]:
        return [("mean", self.mean), ("variance", self.variance), ("count", self.count)]

    def __call__(self, x: jax.Array) -> jax.Array:
        x, mean, variance = _compute(self.dtype, x, self.mean[...], self.variance[...])
        return (x - mean) / jnp.maximum(jnp.sqrt(variance), self.epsilon)
