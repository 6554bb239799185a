"""Build a Keras-named layer graph as nnx modules (attributes named like the Keras layers) and run it."""
from __future__ import annotations

from typing import Sequence

import flax.nnx as nnx
import jax
import jax.numpy as jnp

from models.conv_kernels import conv2d, form_for, layer_key
from models.cuts import INPUT_AFFINE, WEIGHTED_KINDS, Layer, pad_amounts
from models.keras_layers import DepthwiseConv, Normalization, SeparableConv


def build_layer(layer: Layer, in_channels: int, rngs: nnx.Rngs, dtype=None) -> nnx.Module | None:
    """The nnx module holding this layer's weights or RNG (None for stateless layers)."""
    glorot = nnx.initializers.glorot_uniform()
    if layer.kind == "conv":
        return nnx.Conv(
            in_channels, layer.features, (layer.kernel, layer.kernel), strides=layer.stride,
            padding=layer.padding, use_bias=layer.use_bias, kernel_init=glorot, dtype=dtype, rngs=rngs,
        )
    if layer.kind == "bn":
        return nnx.BatchNorm(in_channels, momentum=layer.momentum, epsilon=layer.epsilon, dtype=dtype, rngs=rngs)
    if layer.kind == "dense":
        return nnx.Linear(in_channels, layer.features, use_bias=layer.use_bias, kernel_init=glorot, dtype=dtype, rngs=rngs)
    if layer.kind == "dwconv":
        return DepthwiseConv(in_channels, layer.kernel, stride=layer.stride, padding=layer.padding,
                             use_bias=layer.use_bias, dtype=dtype, rngs=rngs)
    if layer.kind == "sepconv":
        return SeparableConv(in_channels, layer.features, layer.kernel, stride=layer.stride, padding=layer.padding,
                             use_bias=layer.use_bias, dtype=dtype, rngs=rngs)
    if layer.kind == "norm":
        return Normalization(in_channels, epsilon=layer.epsilon, dtype=dtype)
    if layer.kind == "dropout":
        # per_sample: Keras' noise_shape (None, 1, 1, 1), one draw per image (EfficientNet's stochastic depth)
        return nnx.Dropout(layer.rate, broadcast_dims=(1, 2, 3) if layer.per_sample else (), rngs=rngs)
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
    """The backbone's own input scaling (models.cuts.INPUT_AFFINE) of [0, 1] images."""
    if scaling == "unit":
        return x
    if scaling == "symmetric":
        return x * 2.0 - 1.0
    scale, offset = INPUT_AFFINE[scaling]
    if x.shape[-1] != len(scale):  # one grey channel: the channels' mean map
        scale, offset = (sum(scale) / len(scale),), (sum(offset) / len(offset),)
    return x * jnp.asarray(scale, x.dtype) + jnp.asarray(offset, x.dtype)


def activate(x: jax.Array, activation: str) -> jax.Array:
    """A Keras activation by name (swish is Keras' x * sigmoid(x))."""
    if activation == "relu":
        return jax.nn.relu(x)
    if activation == "relu6":
        return jnp.clip(x, 0.0, 6.0)
    if activation == "swish":
        return jax.nn.silu(x)
    if activation == "sigmoid":
        return jax.nn.sigmoid(x)
    return x


def pool(x: jax.Array, layer: Layer) -> jax.Array:
    """Keras MaxPooling2D / AveragePooling2D (SAME max-pools pad with -inf, as Keras' do)."""
    window, strides = (layer.kernel, layer.kernel), (layer.stride, layer.stride)
    if layer.kind == "maxpool":
        if layer.padding == "SAME":
            return nnx.max_pool(x, window, strides=strides, padding="SAME")
        return max_pool(x, layer.kernel, layer.stride)
    if layer.padding != "VALID":
        raise NotImplementedError("AveragePooling2D with padding='same' (no backbone uses it)")
    return nnx.avg_pool(x, window, strides=strides, padding="VALID")


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
            y = activate(apply_conv(getattr(owner, layer.name), h, layer), layer.activation)
        elif kind in ("bn", "dropout", "dwconv", "sepconv", "norm"):
            y = getattr(owner, layer.name)(h)
        elif kind == "dense":
            y = activate(getattr(owner, layer.name)(h), layer.activation)
        elif kind in ("relu", "relu6", "swish"):
            y = activate(h, kind)
        elif kind == "pad":
            before, after = pad_amounts(layer, h.shape[1])
            y = jnp.pad(h, ((0, 0), (before, after), (before, after), (0, 0)))
        elif kind in ("maxpool", "avgpool"):
            y = pool(h, layer)
        elif kind == "add":
            y = args[0] + args[1]
        elif kind == "multiply":
            y = args[0] * args[1]
        elif kind == "concat":
            y = jnp.concatenate(args, axis=-1)
        elif kind == "reshape":
            y = h.reshape(h.shape[0], *layer.shape)
        elif kind == "rescale":
            y = h * jnp.asarray(layer.scale, h.dtype) + jnp.asarray(layer.offset, h.dtype)
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


class GraphModel(nnx.Module):
    """A Keras-named layer graph as one nnx module (the CNN, ResNet50V2, every other backbone): its layers up to
    `last` built by name, run on [0, 1] images after the model's own input scaling. Subclasses check their
    arguments, pick the graph and call build_graph; `returns_logits` says whether the output is the head's."""

    def build_graph(self, graph: Sequence[Layer], last: str, *, model: str, image_size: int, channels: int,
                    input_scaling: str, returns_logits: bool, rngs: nnx.Rngs, dtype=None) -> None:
        from models.cuts import check_scaling, infer_shapes, needed_layers

        self.input_scaling = check_scaling(input_scaling)  # what the model does to its [0, 1] input first
        self.returns_logits = returns_logits
        self.graph = needed_layers(graph, last)
        shapes = infer_shapes(self.graph, image_size, channels, model)
        self.output_shape = shapes[last]  # per image
        build_layers(self, self.graph, shapes, channels, rngs, dtype)

    def __call__(self, x: jax.Array, *, resnet_x: jax.Array | None = None) -> jax.Array:
        y = run_layers(self, self.graph, scale_input(x, self.input_scaling))
        return y.astype(jnp.float32) if self.returns_logits else y

    def features(self, x: jax.Array) -> dict[str, jax.Array]:
        """Every built layer's output by Keras name (for inspection and tests)."""
        return run_layers(self, self.graph, scale_input(x, self.input_scaling), keep_all=True)

    def keras_layers(self) -> dict[str, nnx.Module]:
        """Keras layer name -> nnx module holding its weights, named as in the Keras model (+ the seed head's
        `dense` and `predictions` when built)."""
        return weighted_modules(self, self.graph)
