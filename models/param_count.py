"""Parameter counts from layer graphs alone (no JAX): the seed's parents with their heads, and any fusion."""
from __future__ import annotations

from models.backbones import graph_of
from models.cuts import cumulative_params, infer_shapes, needed_layers
from models.graphs import cnn_graph, head_graph, resnet50v2_graph
from models.spec import FusionSpec


def param_count(name_or_spec: str | FusionSpec, *, image_size: int = 256, channels: int = 3, num_classes: int = 2,
                resnet_head: str = "flatten") -> tuple[int, int]:
    """(total, non-trainable) params of a model counted from its layer graph, without building it (no JAX):
    'cnn', 'resnet50v2' (with `resnet_head`) or a FusionSpec (its own image size, channels and classes)."""
    if isinstance(name_or_spec, FusionSpec):
        return _fusion_params(name_or_spec)
    if name_or_spec == "cnn":
        graph, model = cnn_graph(num_classes), "cnn"
    elif name_or_spec == "resnet50v2":
        graph, model = resnet50v2_graph() + head_graph(resnet_head, num_classes), "resnet50v2"
    else:
        raise ValueError(f"param_count: unknown model {name_or_spec!r}; choose cnn, resnet50v2 or a FusionSpec")
    return cumulative_params(graph, infer_shapes(graph, image_size, channels, model), "predictions", channels)


def _fusion_params(spec: FusionSpec) -> tuple[int, int]:
    """Both cut backbones, one Dense(branch_width) per branch, Dense(head_width), Dense(classes): as FusionNet."""
    total = frozen = concat = 0
    maps = []
    for model, cut in ((spec.backbone_a, spec.cnn_cut), (spec.backbone_b, spec.resnet_cut)):
        if cut is None:
            continue
        graph = graph_of(model, spec.num_classes)
        shapes = infer_shapes(needed_layers(graph, cut), spec.image_size, spec.channels, model)
        n, f = cumulative_params(graph, shapes, cut, spec.channels)
        total, frozen = total + n, frozen + f
        maps.append(shapes[cut])
        if spec.merge == "concat":
            continue
        total += shapes[cut][-1] * spec.branch_width + spec.branch_width
        flattened = len(shapes[cut]) == 3 and spec.pool == "flatten"
        concat += shapes[cut][0] * shapes[cut][1] * spec.branch_width if flattened else spec.branch_width
    if spec.merge == "concat":  # as FusionNet's concat head
        channels = sum(shape[-1] for shape in maps)
        if len(maps[0]) == len(maps[1]) == 3 and maps[0][:2] == maps[1][:2]:
            conv = channels * spec.head_width + spec.head_width
            return total + conv + maps[0][0] * maps[0][1] * spec.head_width * spec.num_classes + spec.num_classes, frozen
        return total + channels * spec.num_classes + spec.num_classes, frozen
    total += concat * spec.head_width + spec.head_width + spec.head_width * spec.num_classes + spec.num_classes
    return total, frozen
