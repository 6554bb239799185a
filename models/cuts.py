"""Keras-named layer graphs: cut-name checks, the sub-graph a cut needs, shapes and params without building."""
from __future__ import annotations

import dataclasses
import difflib
import numbers
from typing import Literal, Sequence

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


# what a backbone does to its input before its first layer: "unit" keeps the [0, 1] images, "symmetric" maps them to
# [-1, 1] (keras.applications' ResNetV2 preprocess_input: x / 127.5 - 1 of 0..255 pixels)
INPUT_SCALINGS = ("unit", "symmetric")


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
