"""Keras-named layer graphs: cut-name checks, the sub-graph a cut needs, shapes and params without building."""
from __future__ import annotations

import dataclasses
import difflib
import numbers
from typing import Literal, Sequence

Kind = Literal["input", "pad", "conv", "bn", "relu", "maxpool", "dropout", "add", "flatten", "gap", "dense",
               "dwconv", "sepconv", "relu6", "swish", "avgpool", "multiply", "concat", "reshape", "rescale", "norm"]
Activation = Literal["linear", "relu", "swish", "sigmoid"]
WEIGHTED_KINDS = ("conv", "bn", "dense", "dwconv", "sepconv", "norm")
KERAS_TYPES = {
    "input": "InputLayer", "pad": "ZeroPadding2D", "conv": "Conv2D", "bn": "BatchNormalization",
    "relu": "Activation", "maxpool": "MaxPooling2D", "dropout": "Dropout", "add": "Add", "flatten": "Flatten",
    "gap": "GlobalAveragePooling2D", "dense": "Dense", "dwconv": "DepthwiseConv2D", "sepconv": "SeparableConv2D",
    "relu6": "ReLU", "swish": "Activation", "avgpool": "AveragePooling2D", "multiply": "Multiply",
    "concat": "Concatenate", "reshape": "Reshape", "rescale": "Rescaling", "norm": "Normalization",
}
SPATIAL_KINDS = ("conv", "dwconv", "sepconv", "maxpool", "avgpool")  # kernel/stride/padding set the output size


@dataclasses.dataclass(frozen=True)
class Layer:
    """One Keras layer: its name, what it does and which layers feed it (none: the model input)."""

    name: str
    kind: Kind
    inputs: tuple[str, ...] = ()
    features: int = 0  # conv/sepconv/dense output channels
    kernel: int = 1  # conv kernel, pool window
    stride: int = 1
    padding: Literal["SAME", "VALID"] = "VALID"
    pad: int = 0  # zero padding on each side (ZeroPadding2D)
    pad_for_kernel: int = 0  # ZeroPadding2D(imagenet_utils.correct_pad(x, k)): its amounts depend on the input size
    use_bias: bool = True
    activation: Activation = "linear"  # dense, conv
    rate: float = 0.0  # dropout
    per_sample: bool = False  # dropout: noise_shape (None, 1, 1, 1), i.e. drops whole samples (stochastic depth)
    epsilon: float = 1e-3  # bn
    momentum: float = 0.99  # bn
    scale: float | tuple[float, ...] = 1.0  # rescale: x * scale + offset (a tuple: one scale per channel)
    offset: float = 0.0
    shape: tuple[int, ...] = ()  # reshape target (per image)


def pad_amounts(layer: Layer, size: int) -> tuple[int, int]:
    """(before, after) zero padding of a `pad` layer on an input of `size` pixels (Keras' correct_pad when
    pad_for_kernel is set: one pixel less before on even sizes, so a stride-2 conv sees TF's SAME windows)."""
    if layer.pad_for_kernel:
        half = layer.pad_for_kernel // 2
        return half - (1 - size % 2), half
    return layer.pad, layer.pad


def check_cut(cut: str, valid: Sequence[str], model: str) -> None:
    """Raise ValueError naming the closest valid cut names when `cut` is not one of `valid`."""
    if cut in valid:
        return
    close = difflib.get_close_matches(str(cut), list(valid), n=5, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else f"valid names start with: {', '.join(valid[:5])}, ..."
    raise ValueError(
        f"unknown {model} cut {cut!r}; {hint} (see `fusion-sweep layers {model}` for all {len(valid)})"
    )


IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# what a backbone does to its [0, 1] input before its first layer, as x * scale + offset per RGB channel: each is a
# keras.applications preprocess_input (of 0..255 pixels) rewritten for [0, 1] images. "unit" keeps them (from scratch,
# the seed's CNN); "symmetric" maps them to [-1, 1] (mode "tf": ResNetV2, Xception, MobileNetV2); "torch" subtracts
# ImageNet's mean and divides by its std (DenseNet); "pixels" gives 0..255 (mode "none": EfficientNet scales inside)
INPUT_AFFINE: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "unit": ((1.0,) * 3, (0.0,) * 3),
    "symmetric": ((2.0,) * 3, (-1.0,) * 3),
    "torch": (tuple(1 / s for s in IMAGENET_STD_RGB), tuple(-m / s for m, s in zip(IMAGENET_MEAN_RGB, IMAGENET_STD_RGB))),
    "pixels": ((255.0,) * 3, (0.0,) * 3),
}
INPUT_SCALINGS = tuple(INPUT_AFFINE)


def check_scaling(scaling: str) -> str:
    if scaling not in INPUT_SCALINGS:
        raise ValueError(f"input scaling must be one of {', '.join(INPUT_SCALINGS)}, got {scaling!r}")
    return scaling


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
        return size + sum(pad_amounts(layer, size))
    if layer.kind in SPATIAL_KINDS:
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
        elif layer.kind == "reshape":
            shape = tuple(layer.shape)
        elif layer.kind == "concat":
            shape = src[:-1] + (sum(shapes[name][-1] for name in layer.inputs),)
        elif layer.kind == "multiply":  # broadcasts, as the SE excite (H, W, C) * (1, 1, C)
            shape = tuple(max(dims) for dims in zip(*(shapes[name] for name in layer.inputs)))
        elif len(src) == 3:
            size = _spatial(src[0], layer)
            if size < 1:
                raise ValueError(
                    f"image_size {image_size} is too small for {model} up to {layer.name!r}: its "
                    f"{src[0]}x{src[1]} input shrinks to nothing; use a larger image or an earlier cut"
                )
            shape = (size, size, layer.features if layer.kind in ("conv", "sepconv") else src[-1])
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
    if layer.kind == "dwconv":
        return layer.kernel * layer.kernel * in_channels + (in_channels if layer.use_bias else 0), 0
    if layer.kind == "sepconv":
        n = layer.kernel * layer.kernel * in_channels + in_channels * layer.features
        return n + (layer.features if layer.use_bias else 0), 0
    if layer.kind == "norm":  # mean, variance and the adapt count, all non-trainable
        return 2 * in_channels + 1, 2 * in_channels + 1
    return 0, 0


def cumulative_params(layers: Sequence[Layer], shapes: dict[str, tuple[int, ...]], cut: str, channels: int) -> tuple[int, int]:
    """(total, non-trainable) params of the graph cut at `cut`, counted from the layer specs."""
    total = frozen = 0
    for layer in needed_layers(layers, cut):
        in_channels = shapes[layer.inputs[0]][-1] if layer.inputs else channels
        n, f = layer_params(layer, in_channels)
        total, frozen = total + n, frozen + f
    return total, frozen
