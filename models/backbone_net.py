"""Any backbone of models.backbones in Flax NNX with Keras' layer names, cuttable at any layer, optional seed head."""
from __future__ import annotations

from typing import Literal

import flax.nnx as nnx
import jax
import jax.numpy as jnp

from models.backbones import backbone
from models.build import build_layers, run_layers, scale_input, weighted_modules
from models.cuts import check_cut, check_image, check_num_classes, check_scaling, infer_shapes, needed_layers
from models.graphs import HEADS, head_graph


class BackboneNet(nnx.Module):
    """A keras.applications backbone by name (`xception`, `densenet121`, ...). cut=None: the backbone + the
    seed's `head` (logits), or its include_top=False output when head is None. With a cut: that layer's output.
    `input_scaling` (models.cuts.INPUT_AFFINE): what it does to its [0, 1] input first, e.g. its preprocess_input
    ("symmetric" for Xception) when it starts from a Keras file; "unit" (as built from scratch) passes input as is.
    imagenet: the graph keras.applications builds with weights="imagenet" (EfficientNet: one more rescaling)."""

    def __init__(self, name: str, *, cut: str | None = None, head: Literal["flatten", "gap"] | None = "flatten",
                 num_classes: int = 2, image_size: int = 224, channels: int = 3, input_scaling: str = "unit",
                 imagenet: bool = False, dtype=None, rngs: nnx.Rngs):
        info = backbone(name)
        self.input_scaling = check_scaling(input_scaling)
        check_image(image_size, channels)
        graph = info.layers(imagenet)
        if cut is not None:
            check_cut(cut, [layer.name for layer in graph], name)
            last = cut
        elif head is None:
            last = info.output
        else:
            if head not in HEADS:
                raise ValueError(f"{name} head must be one of {HEADS} or None, got {head!r}")
            check_num_classes(num_classes)
            graph = graph + head_graph(head, num_classes, on=info.output)
            last = "predictions"
        self.name = name
        self.cut = cut
        self.head = head if cut is None else None
        self.num_classes = num_classes
        self.graph = needed_layers(graph, last)
        shapes = infer_shapes(self.graph, image_size, channels, name)
        self.output_shape = shapes[last]  # per image
        build_layers(self, self.graph, shapes, channels, rngs, dtype)

    def __call__(self, x: jax.Array, *, resnet_x: jax.Array | None = None) -> jax.Array:
        y = run_layers(self, self.graph, scale_input(x, self.input_scaling))
        return y.astype(jnp.float32) if self.head is not None else y

    def features(self, x: jax.Array) -> dict[str, jax.Array]:
        """Every built layer's output by Keras name (for inspection and tests)."""
        return run_layers(self, self.graph, scale_input(x, self.input_scaling), keep_all=True)

    def keras_layers(self) -> dict[str, nnx.Module]:
        """Keras layer name -> nnx module holding its weights, as in keras.applications (+ the head's
        `dense` and `predictions` when built)."""
        return weighted_modules(self, self.graph)
