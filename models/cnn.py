"""The seed's from-scratch CNN (Torres 2023) in Flax NNX, with Keras layer names, cuttable after any layer."""
from __future__ import annotations

import flax.nnx as nnx
import jax
import jax.numpy as jnp

from models.build import build_layers, run_layers, scale_input, weighted_modules
from models.cuts import check_cut, check_scaling, check_image, check_num_classes, infer_shapes, needed_layers
from models.graphs import CNN_LAYERS, cnn_graph


class TorresCNN(nnx.Module):
    """The seed's CNN. cut=None: the classifier (logits). With a cut: the output of that named layer."""

    def __init__(self, *, cut: str | None = None, num_classes: int = 2, image_size: int = 256, channels: int = 3,
                 input_scaling: str = "unit", dtype=None, rngs: nnx.Rngs):
        check_image(image_size, channels)
        check_num_classes(num_classes)
        last = "predictions" if cut is None else cut
        check_cut(last, CNN_LAYERS, "cnn")
        self.cut = cut
        self.input_scaling = check_scaling(input_scaling)  # what the model does to its [0, 1] input first
        self.num_classes = num_classes
        self.graph = needed_layers(cnn_graph(num_classes), last)
        shapes = infer_shapes(self.graph, image_size, channels, "cnn")
        self.output_shape = shapes[last]  # per image
        build_layers(self, self.graph, shapes, channels, rngs, dtype)

    def __call__(self, x: jax.Array, *, resnet_x: jax.Array | None = None) -> jax.Array:
        y = run_layers(self, self.graph, scale_input(x, self.input_scaling))
        return y.astype(jnp.float32) if self.cut is None else y

    def features(self, x: jax.Array) -> dict[str, jax.Array]:
        """Every built layer's output by Keras name (for inspection and tests)."""
        return run_layers(self, self.graph, scale_input(x, self.input_scaling), keep_all=True)

    def keras_layers(self) -> dict[str, nnx.Module]:
        """Keras layer name -> nnx module holding its weights (block{i}_conv, block{i}_bn, dense, predictions)."""
        return weighted_modules(self, self.graph)
