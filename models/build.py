"""Build a Keras-named layer graph as nnx modules (attributes named like the Keras layers) and run it."""
from __future__ import annotations

from typing import Sequence

import flax.nnx as nnx
import jax
import jax.numpy as jnp

from models.cuts import WEIGHTED_KINDS, Layer


def build_layer(layer: Layer, in_channels: int, rngs: nnx.Rngs, dtype=None) -> nnx.Module | None:
    """The nnx module holding this layer's weights or RNG (None for stateless layers)."""
    glorot = nnx.initializers.glorot_uniform()
    if layer.kind == "conv":
        return nnx.Conv(
            in_channels, layer.features, (layer.kernel, layer.kernel), strides=layer.stride,
            padding=layer.padding, use_bias=layer.use_bias, kernel_init=glorot, dtype=dtype, rngs=rngs,
        )
    if layer.kind == "bn":
        return nnx.BatchNorm(in_channels, momentum=0.99, epsilon=layer.epsilon, dtype=dtype, rngs=rngs)
    if layer.kind == "dense":
        return nnx.Linear(in_channels, layer.features, use_bias=layer.use_bias, kernel_init=glorot, dtype=dtype, rngs=rngs)
    if layer.kind == "dropout":
        return nnx.Dropout(layer.rate, rngs=rngs)
    return None


class _ParamKeys:
    """Stands in for nnx.Rngs when creating weights: `.params()` folds a Python counter into one key.
    Advancing an nnx RngStream per layer makes nnx.eval_shape quadratic in depth (every traced
    counter update builds an error message from the whole jaxpr so far)."""

    def __init__(self, key: jax.Array):
        self._key, self._count = key, 0

    def params(self) -> jax.Array:
        self._count += 1
        return jax.random.fold_in(self._key, self._count)


def build_layers(owner: nnx.Module, layers: Sequence[Layer], shapes, channels: int, rngs: nnx.Rngs, dtype=None) -> None:
    """Set each stateful layer on `owner` as an attribute named like the Keras layer."""
    keys = _ParamKeys(rngs.params())
    for layer in layers:
        in_channels = shapes[layer.inputs[0]][-1] if layer.inputs else channels
        module = build_layer(layer, in_channels, keys if layer.kind in WEIGHTED_KINDS else rngs, dtype)
        if module is not None:
            setattr(owner, layer.name, module)


# XLA:CPU computes the gradients of a k x k convolution on a small, wide map (ResNet50V2's later stages at
# 64-128 px) several times slower than the same maths written as one matmul over im2col patches; on larger maps
# its own convolution is as fast or faster (measured in issue 7: `fusion-sweep bench`).
MATMUL_CONV_MAX_PIXELS = 64


def _matmul_conv_pays(layer: Layer, x: jax.Array) -> bool:
    if layer.kernel == 1 or jax.default_backend() != "cpu":
        return False
    size = x.shape[1] + (layer.kernel - 1 if layer.padding == "SAME" else 0)
    out = (size - layer.kernel) // layer.stride + 1
    return out * out <= MATMUL_CONV_MAX_PIXELS


def conv_as_matmul(conv: nnx.Conv, x: jax.Array, layer: Layer) -> jax.Array:
    """conv(x) with the same params, as one matmul over the k*k shifted, strided slices of x (im2col)."""
    k, s = layer.kernel, layer.stride
    if layer.padding == "SAME":
        lo = (k - 1) // 2
        x = jnp.pad(x, ((0, 0), (lo, k - 1 - lo), (lo, k - 1 - lo), (0, 0)))
    kernel = conv.kernel[...]
    dtype = conv.dtype or jnp.result_type(x, kernel)
    x, kernel = x.astype(dtype), kernel.astype(dtype)
    _, height, width, channels = x.shape
    out_h, out_w = (height - k) // s + 1, (width - k) // s + 1
    patches = jnp.concatenate([x[:, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s, :]
                               for i in range(k) for j in range(k)], axis=-1)
    y = jnp.einsum("bhwc,co->bhwo", patches, kernel.reshape(k * k * channels, -1))
    return y + conv.bias[...].astype(dtype) if conv.bias is not None else y


def run_layers(owner: nnx.Module, layers: Sequence[Layer], x: jax.Array, *, keep_all: bool = False):
    """Run the graph on x (B, H, W, C); returns the last layer's output (keep_all: every layer's, by name).
    The Python here runs at trace time only."""
    values: dict[str, jax.Array] = {}
    for layer in layers:
        args = [values[name] for name in layer.inputs] or [x]
        h = args[0]
        kind = layer.kind
        if kind == "input":
            y = h
        elif kind == "conv":
            conv = getattr(owner, layer.name)
            y = conv_as_matmul(conv, h, layer) if _matmul_conv_pays(layer, h) else conv(h)
        elif kind in ("bn", "dropout"):
            y = getattr(owner, layer.name)(h)
        elif kind == "dense":
            y = getattr(owner, layer.name)(h)
            y = jax.nn.relu(y) if layer.activation == "relu" else y
        elif kind == "relu":
            y = jax.nn.relu(h)
        elif kind == "pad":
            p = layer.pad
            y = jnp.pad(h, ((0, 0), (p, p), (p, p), (0, 0)))
        elif kind == "maxpool":
            window, stride = (layer.kernel, layer.kernel), (layer.stride, layer.stride)
            y = nnx.max_pool(h, window, strides=stride, padding="VALID")
        elif kind == "add":
            y = args[0] + args[1]
        elif kind == "flatten":
            y = h.reshape(h.shape[0], -1)
        elif kind == "gap":
            y = jnp.mean(h, axis=(1, 2))
        else:
            raise AssertionError(f"unknown layer kind {kind!r}")
        values[layer.name] = y
    return values if keep_all else values[layers[-1].name]


def weighted_modules(owner: nnx.Module, layers: Sequence[Layer]) -> dict[str, nnx.Module]:
    """Keras layer name -> the nnx.Conv / nnx.BatchNorm / nnx.Linear holding its weights."""
    return {layer.name: getattr(owner, layer.name) for layer in layers if layer.kind in WEIGHTED_KINDS}
