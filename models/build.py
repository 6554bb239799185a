"""Build a Keras-named layer graph as nnx modules (attributes named like the Keras layers) and run it."""
from __future__ import annotations

from typing import Sequence

import flax.nnx as nnx
import jax
import jax.numpy as jnp

from models.conv_kernels import conv2d, form_for, layer_key
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


def apply_conv(conv: nnx.Conv, x: jax.Array, layer: Layer) -> jax.Array:
    """conv(x) in the form models.conv_kernels picks for this layer's shape and backend (the same params): the
    caller's chosen form for this shape (conv_kernels.use_forms), else the CPU rule."""
    kernel = conv.kernel[...]
    dtype = conv.dtype or jnp.result_type(x, kernel)
    key = layer_key(x.shape, kernel.shape, layer.stride, layer.padding, dtype)
    form = form_for(x.shape[1], layer.kernel, layer.stride, layer.padding, key=key)
    if form == "xla":
        return conv(x)
    y = conv2d(x.astype(dtype), kernel.astype(dtype), stride=layer.stride, padding=layer.padding, form=form)
    return y + conv.bias[...].astype(dtype) if conv.bias is not None else y


def max_pool(x: jax.Array, kernel: int, stride: int) -> jax.Array:
    """Keras MaxPooling2D, padding VALID. Windows that do not overlap (kernel == stride, the CNN's 2x2/2) are a
    reshape and a max, and a 1x1 window is a strided slice: the same outputs as reduce_window, but a gradient without
    the four int32 index maps per pooled tensor that XLA's CPU backend builds for reduce_window's (~110 ms of
    thunk time in a profile of the CNN's 64 px, batch 32 train step, which went 49.6 -> 51.8 images/s). Where maxima
    tie exactly, the gradient is shared between them instead of going to the first; after a ReLU such ties are
    zeros, whose gradient the ReLU drops."""
    if kernel == 1:
        return x[:, ::stride, ::stride]
    if kernel != stride:  # overlapping windows (ResNet50V2's 3x3/2 stem pool)
        return nnx.max_pool(x, (kernel, kernel), strides=(stride, stride), padding="VALID")
    batch, height, width, channels = x.shape
    out_h, out_w = height // kernel, width // kernel
    windows = x[:, :out_h * kernel, :out_w * kernel].reshape(batch, out_h, kernel, out_w, kernel, channels)
    return windows.max(axis=(2, 4))


def scale_input(x: jax.Array, scaling: str) -> jax.Array:
    """The backbone's own input scaling (models.cuts.INPUT_SCALINGS) of [0, 1] images."""
    return x * 2.0 - 1.0 if scaling == "symmetric" else x


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
            y = apply_conv(getattr(owner, layer.name), h, layer)
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
            y = max_pool(h, layer.kernel, layer.stride)
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
