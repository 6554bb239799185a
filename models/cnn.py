"""The seed's from-scratch CNN (Torres 2023) in Flax NNX, with Keras layer names, cuttable after any layer."""
from __future__ import annotations

import flax.nnx as nnx
import jax
import jax.numpy as jnp

from models.cuts import (
    Layer, build_layers, check_cut, check_image, check_num_classes, infer_shapes, needed_layers, run_layers,
    weighted_modules,
)

FILTERS = (32, 64, 128, 256, 512)
KERNELS = (3, 5, 3, 5, 3)
DROPOUTS = (0.2, 0.2, 0.3, 0.3, 0.3)
BN_EPSILON = 1e-3  # Keras BatchNormalization default


def cnn_graph(num_classes: int = 2) -> tuple[Layer, ...]:
    """Every layer of the seed's CNN, in Keras order: 5 x (conv same -> relu -> bn -> maxpool 2 -> dropout), head."""
    layers = [Layer("input", "input")]
    prev = "input"
    for i, (filters, kernel, rate) in enumerate(zip(FILTERS, KERNELS, DROPOUTS), start=1):
        block = [
            Layer(f"block{i}_conv", "conv", (prev,), features=filters, kernel=kernel, padding="SAME"),
            Layer(f"block{i}_relu", "relu", (f"block{i}_conv",)),
            Layer(f"block{i}_bn", "bn", (f"block{i}_relu",), epsilon=BN_EPSILON),
            Layer(f"block{i}_pool", "maxpool", (f"block{i}_bn",), kernel=2, stride=2),
            Layer(f"block{i}_drop", "dropout", (f"block{i}_pool",), rate=rate),
        ]
        layers += block
        prev = block[-1].name
    layers += [
        Layer("flatten", "flatten", (prev,)),
        Layer("dense", "dense", ("flatten",), features=2048, activation="relu"),
        Layer("dropout", "dropout", ("dense",), rate=0.5),
        Layer("predictions", "dense", ("dropout",), features=num_classes),  # logits; softmax lives in the loss
    ]
    return tuple(layers)


CNN_LAYERS: tuple[str, ...] = tuple(layer.name for layer in cnn_graph())


class TorresCNN(nnx.Module):
    """The seed's CNN. cut=None: the classifier (logits). With a cut: the output of that named layer."""

    def __init__(self, *, cut: str | None = None, num_classes: int = 2, image_size: int = 256, channels: int = 3,
                 dtype=None, rngs: nnx.Rngs):
        check_image(image_size, channels)
        check_num_classes(num_classes)
        last = "predictions" if cut is None else cut
        check_cut(last, CNN_LAYERS, "cnn")
        self.cut = cut
        self.num_classes = num_classes
        self.graph = needed_layers(cnn_graph(num_classes), last)
        shapes = infer_shapes(self.graph, image_size, channels, "cnn")
        self.output_shape = shapes[last]  # per image
        build_layers(self, self.graph, shapes, channels, rngs, dtype)

    def __call__(self, x: jax.Array, *, resnet_x: jax.Array | None = None) -> jax.Array:
        y = run_layers(self, self.graph, x)
        return y.astype(jnp.float32) if self.cut is None else y

    def features(self, x: jax.Array) -> dict[str, jax.Array]:
        """Every built layer's output by Keras name (for inspection and tests)."""
        return run_layers(self, self.graph, x, keep_all=True)

    def keras_layers(self) -> dict[str, nnx.Module]:
        """Keras layer name -> nnx module holding its weights (block{i}_conv, block{i}_bn, dense, predictions)."""
        return weighted_modules(self, self.graph)
