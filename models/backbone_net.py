"""Any backbone of models.backbones in Flax NNX with Keras' layer names, cuttable at any layer, optional seed head."""
from __future__ import annotations

from typing import Literal

import flax.nnx as nnx

from models.backbones import backbone
from models.build import GraphModel
from models.cuts import check_cut, check_image, check_num_classes
from models.graphs import HEADS, head_graph


class BackboneNet(GraphModel):
    """A keras.applications backbone by name (`xception`, `densenet121`, ...). cut=None: the backbone + the
    seed's `head` (logits), or its include_top=False output when head is None. With a cut: that layer's output.
    `input_scaling` (models.cuts.INPUT_AFFINE): what it does to its [0, 1] input first, e.g. its preprocess_input
    ("symmetric" for Xception) when it starts from a Keras file; "unit" (as built from scratch) passes input as is.
    imagenet: the graph keras.applications builds with weights="imagenet" (EfficientNet: one more rescaling)."""

    def __init__(self, name: str, *, cut: str | None = None, head: Literal["flatten", "gap"] | None = "flatten",
                 num_classes: int = 2, image_size: int = 224, channels: int = 3, input_scaling: str = "unit",
                 imagenet: bool = False, dtype=None, rngs: nnx.Rngs):
        info = backbone(name)
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
        self.build_graph(graph, last, model=name, image_size=image_size, channels=channels,
                         input_scaling=input_scaling, returns_logits=self.head is not None, rngs=rngs, dtype=dtype)
