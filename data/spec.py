"""DataSpec and PipelineSpec: what dataset to prepare, and how batches are made from it."""
from __future__ import annotations

import dataclasses
from typing import Literal

SEED_CLASSES = ("COVID", "Normal")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Which dataset, prepared how. Everything that changes the prepared arrays is in here (it keys the cache)."""

    source: Literal["synthetic", "radiography"] = "synthetic"
    data_dir: str | None = None  # radiography: the manual dir (Kaggle layout, the seed's layout, or folder-per-class)
    classes: tuple[str, ...] = SEED_CLASSES  # label order as given
    image_size: int = 64
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)  # train, val, test
    split_seed: int = 0
    subset: int | None = None  # keep at most this many images (per class), for quick CPU runs
    skip_bad: bool = False  # skip unreadable images (and report them) instead of failing
    cache_dir: str | None = None  # prepared datasets live here; default: <user cache>/fusion-sweep/datasets
    # synthetic only
    num_images: int = 2000
    difficulty: float = 0.5  # 0 easy .. 1 hard: lesion contrast relative to noise
    marker_rate: tuple[float, ...] | None = None  # per-class probability of a burnt-in text marker
    intensity_shift: tuple[float, ...] | None = None  # per-class brightness offset (in [0,1] grey units)
    synthetic_seed: int = 0

    def replace(self, **changes) -> "DataSpec":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    """How prepared uint8 images become model inputs. Identical for train and eval except augmentation."""

    channels: int = 3  # the model sees 1 or 3 channels (grey replicated)
    normalization: Literal["unit", "symmetric"] = "unit"  # [0,1], or [-1,1] for ImageNet ResNetV2 weights
    balance: Literal["none", "oversample", "class_weight"] = "none"
    oversample: tuple[float, ...] | None = None  # per-class repeat factor for 'oversample' (seed: COVID x3)
    augment: Literal["none", "mild", "seed"] = "mild"
    crop_border: float = 0.0  # crop this fraction from each side (then resize back): the seed's fix for text markers

    def replace(self, **changes) -> "PipelineSpec":
        return dataclasses.replace(self, **changes)
