"""One sentence for report.md and report.html: which weights each model of a sweep started from (manifest's `init`)."""
from __future__ import annotations

BACKBONE_TITLES = {"cnn": "CNN", "resnet50v2": "ResNet50V2", "xception": "Xception", "densenet121": "DenseNet121",
                   "mobilenetv2": "MobileNetV2", "efficientnetb0": "EfficientNetB0"}


def starting_weights(manifest: dict) -> str:
    """E.g. 'Starting weights: ResNet50V2 layers (the parent and each fusion's branch up to its cut) from imagenet
    (`/cache/weights/x.h5`, sha256 `fac2...`); CNN layers from scratch; branch and head Dense layers from scratch.'"""
    init = manifest.get("init")
    if not init:  # written before fusion-sweep had --init: every model trained from scratch
        return "Starting weights: every model from scratch (this sweep predates `--init`)."
    parts = []
    for backbone, record in init.items():
        title = BACKBONE_TITLES.get(backbone, backbone)
        where = ""
        if record.get("path"):
            where = f" (`{record['path']}`, sha256 `{record['sha256']}`)"
        parts.append(f"{title} layers (the {title} parent and each fusion's {title} branch up to its cut) from "
                     f"{record.get('source', '?')}{where}, input scaled {_scaling(record.get('input_scaling'))}")
    return ("Starting weights: " + "; ".join(parts)
            + "; branch and head Dense layers and layers past a cut from scratch (trials.csv: `init_<backbone>`).")


def _scaling(scaling: str | None) -> str:
    return {"unit": "to [0, 1]", "symmetric": "to [-1, 1]", "torch": "by ImageNet's mean and std",
            "pixels": "to [0, 255]"}.get(scaling or "", str(scaling))
