"""ResNet50V2 in Flax NNX with Keras' exact layer names and structure, cuttable at any layer, optional seed head."""
from __future__ import annotations

from typing import Literal

import flax.nnx as nnx
import jax
import jax.numpy as jnp

from models.build import build_layers, run_layers, scale_input, weighted_modules
from models.cuts import check_cut, check_scaling, check_image, check_num_classes, infer_shapes, needed_layers
from models.graphs import HEADS, RESNET50V2_LAYERS, head_graph, resnet50v2_graph


class ResNet50V2(nnx.Module):
    """ResNet50V2. cut=None: backbone + `head` (logits), or the post_relu map when head is None.
    With a cut: the output of that named layer (the head is not built)."""

    def __init__(self, *, cut: str | None = None, head: Literal["flatten", "gap"] | None = "flatten",
                 num_classes: int = 2, image_size: int = 256, channels: int = 3, input_scaling: str = "unit",
                 dtype=None, rngs: nnx.Rngs):
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
        self.input_scaling = check_scaling(input_scaling)  # what the model does to its [0, 1] input first
        self.head = head if cut is None else None
        self.num_classes = num_classes
        self.graph = needed_layers(graph, last)
        shapes = infer_shapes(self.graph, image_size, channels, "resnet50v2")
        self.output_shape = shapes[last]  # per image
        build_layers(self, self.graph, shapes, channels, rngs, dtype)

    def __call__(self, x: jax.Array, *, resnet_x: jax.Array | None = None) -> jax.Array:
        y = run_layers(self, self.graph, scale_input(x, self.input_scaling))
        return y.astype(jnp.float32) if self.head is not None else y

    def features(self, x: jax.Array) -> dict[str, jax.Array]:
        """Every built layer's output by Keras name (for inspection and tests)."""
        return run_layers(self, self.graph, scale_input(x, self.input_scaling), keep_all=True)

    def keras_layers(self) -> dict[str, nnx.Module]:
        """Keras layer name -> nnx module holding its weights: backbone names as in Keras' ResNet50V2
        (conv1_conv, conv2_block1_preact_bn, ..., post_bn) plus the head's `dense` and `predictions`."""
        return weighted_modules(self, self.graph)
