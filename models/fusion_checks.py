"""A FusionSpec checked before anything is built, in plain Python (no JAX): commands refuse a bad one at once."""
from __future__ import annotations

import numbers

from models.backbones import BACKBONES, graph_of
from models.cuts import check_cut, check_image, check_num_classes, infer_shapes, needed_layers
from models.spec import FusionSpec

ACTIVATIONS = ("linear", "relu", "softmax")
POOLS = ("gap", "flatten")
MERGES = ("branches", "concat")


def check_spec(spec: FusionSpec) -> None:
    """ValueError naming the offending field and value, before anything is built."""
    if spec.cnn_cut is None and spec.resnet_cut is None:
        raise ValueError("a fusion needs at least one branch: cnn_cut and resnet_cut are both None")
    for field in ("branch_width", "head_width"):
        value = getattr(spec, field)
        if not isinstance(value, numbers.Integral) or value <= 0:
            raise ValueError(f"{field} must be a positive int, got {value!r}")
    for field in ("cnn_branch_activation", "resnet_branch_activation"):
        if getattr(spec, field) not in ACTIVATIONS:
            raise ValueError(f"{field} must be one of {', '.join(ACTIVATIONS)}; got {getattr(spec, field)!r}")
    if spec.merge not in MERGES:
        raise ValueError(f"merge must be one of {', '.join(MERGES)}; got {spec.merge!r}")
    if spec.merge == "concat" and (spec.cnn_cut is None or spec.resnet_cut is None):
        raise ValueError("merge 'concat' joins two backbones: cnn_cut and resnet_cut must both be set")
    if spec.pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {spec.pool!r}")
    if not 0.0 <= spec.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {spec.dropout!r}")
    check_num_classes(spec.num_classes)
    check_image(spec.image_size, spec.channels)
    check_branches(spec)
    for model, cut in ((spec.backbone_a, spec.cnn_cut), (spec.backbone_b, spec.resnet_cut)):
        if cut is not None:  # both branches checked before either is built
            infer_shapes(needed_layers(graph_of(model, spec.num_classes), cut), spec.image_size, spec.channels, model)


def check_branches(spec: FusionSpec) -> None:
    """ValueError for an unknown backbone name or a cut that is not one of its layers (sizes aside)."""
    valid = ("cnn", *BACKBONES)
    for field in ("backbone_a", "backbone_b"):
        if getattr(spec, field) not in valid:
            raise ValueError(f"{field} must be one of {', '.join(valid)}; got {getattr(spec, field)!r}")
    for model, cut in ((spec.backbone_a, spec.cnn_cut), (spec.backbone_b, spec.resnet_cut)):
        if cut is not None:
            check_cut(cut, [layer.name for layer in graph_of(model, spec.num_classes)], model)
