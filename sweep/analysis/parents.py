"""Where the parents' parameters sit: how much of each parent's count is its Flatten/Dense head, from the graphs."""
from __future__ import annotations

from models.cuts import cumulative_params, infer_shapes
from models.graphs import cnn_graph, head_graph, resnet50v2_graph


def head_fractions(image_size: int = 256, channels: int = 3, num_classes: int = 2) -> dict[str, dict]:
    """Per parent: total params, backbone params, head params and the head's share (counted, never built)."""
    out = {}
    for model, graph, backbone_end in (("cnn", cnn_graph(num_classes), "block5_drop"),
                                       ("resnet50v2", resnet50v2_graph() + head_graph("flatten", num_classes),
                                        "post_relu")):
        shapes = infer_shapes(graph, image_size, channels, model)
        total, _ = cumulative_params(graph, shapes, "predictions", channels)
        backbone, _ = cumulative_params(graph, shapes, backbone_end, channels)
        out[model] = {"params": total, "backbone": backbone, "head": total - backbone,
                      "head_fraction": 1 - backbone / total}
    return out
