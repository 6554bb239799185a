"""Keras-named layer graphs: cut-name checks, the sub-graph a cut needs, shapes and params without building."""
from __future__ import annotations

import dataclasses
import difflib
import numbers
from typing import Literal, Sequence

import flax.nnx as nnx
import jax
import jax.numpy as jnp

Kind = Literal["input", "pad", "conv", "bn", "relu", "maxpool", "dropout", "add", "flatten", "gap", "dense"]
WEIGHTED_KINDS = ("conv", "bn", "dense")
KERAS_TYPES = {
    "input": "InputLayer", "pad": "ZeroPadding2D", "conv": "Conv2D", "bn": "BatchNormalization",
    "relu": "Activation", "maxpool": "MaxPooling2D", "dropout": "Dropout", "add": "Add", "flatten": "Flatten",
    "gap": "GlobalAveragePooling2D", "dense": "Dense",
}


@dataclasses.dataclass(frozen=True)
class Layer:
    """One Keras layer: its name, what it does and which layers feed it (none: the model input)."""

    name: str
    kind: Kind
    inputs: tuple[str, ...] = ()
    features: int = 0  # conv/dense output channels
    kernel: int = 1  # conv kernel, maxpool window
    stride: int = 1
    padding: Literal["SAME", "VALID"] = "VALID"
    pad: int = 0  # zero padding on each side (ZeroPadding2D)
    use_bias: bool = True
    activation: Literal["linear", "relu"] = "linear"  # dense
    rate: float = 0.0  # dropout
    epsilon: float = 1e-3  # bn


def check_cut(cut: str, valid: Sequence[str], model: str) -> None:
    """Raise ValueError naming the closest valid cut names when `cut` is not one of `valid`."""
    if cut in valid:
        return
    close = difflib.get_close_matches(str(cut), list(valid), n=5, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else f"valid names start with: {', '.join(valid[:5])}, ..."
    raise ValueError(
        f"unknown {model} cut {cut!r}; {hint} (see `fusion-sweep layers {model}` for all {len(valid)})"
    )


def check_image(image_size: int, channels: int) -> None:
    if not isinstance(image_size, numbers.Integral) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")


def check_num_classes(num_classes: int) -> None:
    if not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")


def needed_layers(layers: Sequence[Layer], cut: str) -> tuple[Layer, ...]:
    """The layers `cut` depends on (itself included), in graph order: what Keras' Model(input, cut) keeps."""
    by_name = {layer.name: layer for layer in layers}
    keep, todo = set(), [cut]
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(by_name[name].inputs)
    return tuple(layer for layer in layers if layer.name in keep)


def _spatial(size: int, layer: Layer) -> int:
    if layer.kind == "pad":
        return size + 2 * layer.pad
    if layer.kind in ("conv", "maxpool"):
        if layer.padding == "SAME":
            return -(-size // layer.stride)
        return (size - layer.kernel) // layer.stride + 1 if size >= layer.kernel else 0
    return size


def infer_shapes(layers: Sequence[Layer], image_size: int, channels: int, model: str) -> dict[str, tuple[int, ...]]:
    """Per-image output shape of every layer; ValueError when a spatial size reaches 0 on the way."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in layers:
        src = shapes[layer.inputs[0]] if layer.inputs else (int(image_size), int(image_size), int(channels))
        if layer.kind in ("flatten", "gap"):
            n = src[0] * src[1] * src[2] if layer.kind == "flatten" else src[-1]
            shape = (n,)
        elif layer.kind == "dense":
            shape = (layer.features,)
        elif len(src) == 3:
            size = _spatial(src[0], layer)
            if size < 1:
                raise ValueError(
                    f"image_size {image_size} is too small for {model} up to {layer.name!r}: its "
                    f"{src[0]}x{src[1]} input shrinks to nothing; use a larger image or an earlier cut"
                )
            shape = (size, size, layer.features if layer.kind == "conv" else src[-1])
        else:
            shape = src
        shapes[layer.name] = shape
    return shapes


def layer_params(layer: Layer, in_channels: int) -> tuple[int, int]:
    """(total, non-trainable) params that Keras counts for this layer."""
    if layer.kind == "conv":
        n = layer.kernel * layer.kernel * in_channels * layer.features + (layer.features if layer.use_bias else 0)
        return n, 0
    if layer.kind == "dense":
        return in_channels * layer.features + (layer.features if layer.use_bias else 0), 0
    if layer.kind == "bn":
        return 4 * in_channels, 2 * in_channels
    return 0, 0


def cumulative_params(layers: Sequence[Layer], shapes: dict[str, tuple[int, ...]], cut: str, channels: int) -> tuple[int, int]:
    """(total, non-trainable) params of the graph cut at `cut`, counted from the layer specs."""
    total = frozen = 0
    for layer in needed_layers(layers, cut):
        in_channels = shapes[layer.inputs[0]][-1] if layer.inputs else channels
        n, f = layer_params(layer, in_channels)
        total, frozen = total + n, frozen + f
    return total, frozen


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
