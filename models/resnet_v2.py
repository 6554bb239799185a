"""ResNet50V2 in Flax NNX with Keras' exact layer names and structure, cuttable at any layer, optional seed head."""
from __future__ import annotations

from typing import Literal

import flax.nnx as nnx

from models.build import GraphModel
from models.cuts import check_cut, check_image, check_num_classes
from models.graphs import HEADS, RESNET50V2_LAYERS, head_graph, resnet50v2_graph


class ResNet50V2(GraphModel):
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
        self.head = head if cut is None else None
        self.num_classes = num_classes
        self.build_graph(graph, last, model="resnet50v2", image_size=image_size, channels=channels,
                         input_scaling=input_scaling, returns_logits=self.head is not None, rngs=rngs, dtype=dtype)
