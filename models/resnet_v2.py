"""ResNet50V2 in Flax NNX with Keras' exact layer names and structure, cuttable at any layer, optional seed head."""
from __future__ import annotations

from typing import Literal

import flax.nnx as nnx
import jax
import jax.numpy as jnp

from models.cuts import (
    Layer, build_layers, check_cut, check_image, check_num_classes, infer_shapes, needed_layers, run_layers,
    weighted_modules,
)

BN_EPSILON = 1.001e-5  # keras.applications ResNetV2
STAGES = ((64, 3, 2), (128, 4, 2), (256, 6, 2), (512, 3, 1))  # filters, blocks, stride of the stage's last block
HEADS = ("flatten", "gap")


def _block(prefix: str, x: str, filters: int, stride: int, conv_shortcut: bool, pool_name: str) -> list[Layer]:
    """Keras' ResNetV2 block2: pre-activation, 1x1 -> padded 3x3 (carries the stride) -> 1x1, plus shortcut."""
    p = prefix
    layers = [
        Layer(p + "preact_bn", "bn", (x,), epsilon=BN_EPSILON),
        Layer(p + "preact_relu", "relu", (p + "preact_bn",)),
        Layer(p + "1_conv", "conv", (p + "preact_relu",), features=filters, use_bias=False),
        Layer(p + "1_bn", "bn", (p + "1_conv",), epsilon=BN_EPSILON),
        Layer(p + "1_relu", "relu", (p + "1_bn",)),
        Layer(p + "2_pad", "pad", (p + "1_relu",), pad=1),
        Layer(p + "2_conv", "conv", (p + "2_pad",), features=filters, kernel=3, stride=stride, use_bias=False),
        Layer(p + "2_bn", "bn", (p + "2_conv",), epsilon=BN_EPSILON),
        Layer(p + "2_relu", "relu", (p + "2_bn",)),
    ]
    if conv_shortcut:
        shortcut = p + "0_conv"
        layers.append(Layer(shortcut, "conv", (p + "preact_relu",), features=4 * filters, stride=stride))
    elif stride > 1:
        shortcut = pool_name
        layers.append(Layer(shortcut, "maxpool", (x,), kernel=1, stride=stride))
    else:
        shortcut = x
    layers += [
        Layer(p + "3_conv", "conv", (p + "2_relu",), features=4 * filters),
        Layer(p + "out", "add", (shortcut, p + "3_conv")),
    ]
    return layers


def resnet50v2_graph() -> tuple[Layer, ...]:
    """Every layer of keras.applications.ResNet50V2(include_top=False), in Keras order."""
    layers = [
        Layer("input_layer", "input"),
        Layer("conv1_pad", "pad", ("input_layer",), pad=3),
        Layer("conv1_conv", "conv", ("conv1_pad",), features=64, kernel=7, stride=2),
        Layer("pool1_pad", "pad", ("conv1_conv",), pad=1),
        Layer("pool1_pool", "maxpool", ("pool1_pad",), kernel=3, stride=2),
    ]
    x, pools = "pool1_pool", 0
    for stage, (filters, blocks, stride) in enumerate(STAGES, start=2):
        for b in range(1, blocks + 1):
            block_stride = stride if b == blocks else 1
            pool_name = "max_pooling2d" + (f"_{pools}" if pools else "")
            block = _block(f"conv{stage}_block{b}_", x, filters, block_stride, b == 1, pool_name)
            pools += any(layer.name == pool_name for layer in block)
            layers += block
            x = block[-1].name
    layers += [
        Layer("post_bn", "bn", (x,), epsilon=BN_EPSILON),
        Layer("post_relu", "relu", ("post_bn",)),
    ]
    return tuple(layers)


def head_graph(head: str, num_classes: int) -> tuple[Layer, ...]:
    """The seed's head on post_relu: Flatten (or GAP) -> Dense 2048 relu -> Dropout .5 -> Dense classes (logits)."""
    pool = Layer("flatten", "flatten", ("post_relu",)) if head == "flatten" else Layer("avg_pool", "gap", ("post_relu",))
    return (
        pool,
        Layer("dense", "dense", (pool.name,), features=2048, activation="relu"),
        Layer("dropout", "dropout", ("dense",), rate=0.5),
        Layer("predictions", "dense", ("dropout",), features=num_classes),
    )


RESNET50V2_LAYERS: tuple[str, ...] = tuple(layer.name for layer in resnet50v2_graph())


class ResNet50V2(nnx.Module):
    """ResNet50V2. cut=None: backbone + `head` (logits), or the post_relu map when head is None.
    With a cut: the output of that named layer (the head is not built)."""

    def __init__(self, *, cut: str | None = None, head: Literal["flatten", "gap"] | None = "flatten",
                 num_classes: int = 2, image_size: int = 256, channels: int = 3, dtype=None, rngs: nnx.Rngs):
        check_image(image_size, channels)
        if cut is not None:
            check_cut(cut, RESNET50V2_LAYERS, "resnet50v2")
            graph, last = resnet50v2_graph(), cut
        elif head is None:
            graph, last = resnet50v2_graph(), "post_relu"
        else:
            if head not in HEADS:
                raise ValueError(f"resnet50v2 head must be one of {HEADS} or None, got {head!r}")
            check_num_classes(num_classes)
            graph = resnet50v2_graph() + head_graph(head, num_classes)
            last = "predictions"
        self.cut = cut
        self.head = head if cut is None else None
        self.num_classes = num_classes
        self.graph = needed_layers(graph, last)
        shapes = infer_shapes(self.graph, image_size, channels, "resnet50v2")
        self.output_shape = shapes[last]  # per image
        build_layers(self, self.graph, shapes, channels, rngs, dtype)

    def __call__(self, x: jax.Array, *, resnet_x: jax.Array | None = None) -> jax.Array:
        y = run_layers(self, self.graph, x)
        return y.astype(jnp.float32) if self.head is not None else y

    def features(self, x: jax.Array) -> dict[str, jax.Array]:
        """Every built layer's output by Keras name (for inspection and tests)."""
        return run_layers(self, self.graph, x, keep_all=True)

    def keras_layers(self) -> dict[str, nnx.Module]:
        """Keras layer name -> nnx module holding its weights: backbone names as in Keras' ResNet50V2
        (conv1_conv, conv2_block1_preact_bn, ..., post_bn) plus the head's `dense` and `predictions`."""
        return weighted_modules(self, self.graph)
