"""What names a configuration: the trials table's identity columns, the seed's fusion as such a row, its label.

A configuration is a trial without its seed: {"model", "cnn_cut", "resnet_cut", "branch_width", "head_width"}
(cuts None and widths None where a parent model has no such thing). Tables, progress lines, plots and
explanations all name configurations through config_label.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from models.spec import SEED_BACKBONES, FusionSpec, fusion_label

CONFIG_KEYS = ("model", "cnn_cut", "resnet_cut", "branch_width", "head_width")
_SEED = FusionSpec()  # its defaults are the seed's fusion
SEED_FUSION = {"model": "fusion", "cnn_cut": _SEED.cnn_cut, "resnet_cut": _SEED.resnet_cut,
               "branch_width": _SEED.branch_width, "head_width": _SEED.head_width}


def config_label(config: Mapping[str, Any]) -> str:
    """A short name: 'cnn', 'resnet50v2', or the fusion's label ('cnn:block3_drop+rn:.../b2048/h2048')."""
    if config["model"] != "fusion":
        return str(config["model"])
    merge = "concat" if config.get("merge") == "concat" else "branches"
    return fusion_label(_cut(config.get("cnn_cut")), _cut(config.get("resnet_cut")), _width(config["branch_width"]),
                        _width(config["head_width"]), backbone_a=backbones_of(config)[0],
                        backbone_b=backbones_of(config)[1], merge=merge)


def backbones_of(config: Mapping[str, Any]) -> tuple[str, str]:
    """The fused pair of a configuration row: its backbone_a/backbone_b (fusions of other pairs), else the seed's."""
    a, b = config.get("backbone_a"), config.get("backbone_b")
    if a is None or str(a) in ("", "nan", "<NA>", "None"):  # a seed-pair row of a table read back (NaN, pd.NA)
        return SEED_BACKBONES
    return str(a), str(b)


def is_seed_fusion(config: Mapping[str, Any]) -> bool:
    """Whether a trials/config row is the seed's own fusion (widths may come back from CSV as floats)."""
    try:
        return (config.get("model") == "fusion" and backbones_of(config) == SEED_BACKBONES
                and _cut(config.get("cnn_cut")) == SEED_FUSION["cnn_cut"]
                and _cut(config.get("resnet_cut")) == SEED_FUSION["resnet_cut"]
                and _width(config.get("branch_width")) == SEED_FUSION["branch_width"]
                and _width(config.get("head_width")) == SEED_FUSION["head_width"])
    except (TypeError, ValueError):
        return False


def config_of(train) -> dict[str, Any]:
    """The configuration row of a TrainConfig (its model, and the cuts and widths of its fusion)."""
    if train.model != "fusion":
        return {"model": train.model, "cnn_cut": None, "resnet_cut": None, "branch_width": None, "head_width": None}
    spec = train.fusion
    config = {"model": "fusion", "cnn_cut": spec.cnn_cut, "resnet_cut": spec.resnet_cut,
              "branch_width": spec.branch_width, "head_width": spec.head_width}
    if spec.merge == "concat":
        config["merge"] = "concat"
    return config if spec.seed_pair else {**config, **pair_columns(spec.backbone_a, spec.backbone_b, config)}


def pair_columns(backbone_a: str, backbone_b: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """trials.csv's columns of a fusion of another pair than the seed's (CONTRACT.md)."""
    return {"backbone_a": backbone_a, "backbone_b": backbone_b, "cut_a": config.get("cnn_cut"),
            "cut_b": config.get("resnet_cut")}


def _width(value) -> int:
    return int(float(value))  # tables read back from CSV hold widths as floats or strings


def _cut(value) -> str | None:
    """A cut as read from a table: empty, NaN and 'none' mean no branch."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).lower() in ("", "none"):
        return None
    return str(value)
