"""The seed's from-scratch CNN (Torres 2023) in Flax NNX, with Keras layer names, cuttable after any layer."""
from __future__ import annotations

import flax.nnx as nnx

from models.build import GraphModel
from models.cuts import check_cut, check_image, check_num_classes
from models.graphs import CNN_LAYERS, cnn_graph


class TorresCNN(GraphModel):
    """The seed's CNN. cut=None: the classifier (logits). With a cut: the output of that named layer."""

    def __init__(self, *, cut: str | None = None, num_classes: int = 2, image_size: int = 256, channels: int = 3,
                 input_scaling: str = "unit", dtype=None, rngs: nnx.Rngs):
        check_image(image_size, channels)
        check_num_classes(num_classes)
        last = "predictions" if cut is None else cut
        check_cut(last, CNN_LAYERS, "cnn")
        self.cut = cut
        self.num_classes = num_classes
        self.build_graph(cnn_graph(num_classes), last, model="cnn", image_size=image_size, channels=channels,
                         input_scaling=input_scaling, returns_logits=cut is None, rngs=rngs, dtype=dtype)
