"""DataSpec and PipelineSpec: what dataset to prepare, and how batches are made from it."""
from __future__ import annotations

import dataclasses
from typing import Literal

SEED_CLASSES = ("COVID", "Normal")
SPLIT_STRATA = ("class", "source_class")


@dataclasses.dataclass(frozen=True)
class SiteSpec:
    """One synthetic acquisition site (a hospital, in effect): how many of the images it takes, its class mix, and
    what it does to every film it makes: a burnt-in text marker (probability per class), a brightness offset and
    extra noise. Sites whose class mixes differ make their habits predictive of the class: a shortcut."""

    name: str = "site"
    share: float = 1.0  # relative share of the dataset's images from this site
    class_mix: tuple[float, ...] | None = None  # relative share of each class among its images (None: equal)
    marker_rate: tuple[float, ...] = (0.0,)  # per class probability of a burnt-in marker (one value: every class)
    intensity_shift: float = 0.0  # added to every pixel (grey units in [0, 1])
    noise: float = 0.0  # sd of extra white noise (grey units)

    def replace(self, **changes) -> "SiteSpec":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class ExternalSpec:
    """An evaluation-only set, scored by every trial of a sweep: a folder of images (the Kaggle layout
    `<class>/images/` or one folder per class; class folders are matched to the model's classes by name) or a
    synthetic site drawn with the sweep's own generator settings (its images are never in the sweep's data)."""

    source: Literal["radiography", "synthetic"] = "radiography"
    data_dir: str | None = None  # radiography
    site: SiteSpec | None = None  # synthetic
    num_images: int = 400  # synthetic

    def replace(self, **changes) -> "ExternalSpec":
        return dataclasses.replace(self, **changes)


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
    sites: tuple[SiteSpec, ...] | None = None  # synthetic: where the images come from (None: one plain site)
    # the patient-grouped split is stratified by class, or by (source, class) from metadata.csv's source column (or
    # the synthetic sites); (source, class) cells of at most rare_to_test images go wholly to the test split
    split_strata: Literal["class", "source_class"] = "class"
    rare_to_test: int = 0

    def replace(self, **changes) -> "DataSpec":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    """How prepared uint8 images become model inputs. Identical for train and eval except augmentation."""

    channels: int = 3  # the model sees 1 or 3 channels (grey replicated)
    # auto: each branch scales the [0,1] images as its starting weights expect (ImageNet ResNetV2: [-1,1]; from
    # scratch: [0,1]), inside the model where the branches split; unit ([0,1]) or symmetric ([-1,1]): every branch
    normalization: Literal["auto", "unit", "symmetric"] = "auto"
    balance: Literal["none", "oversample", "class_weight"] = "none"
    oversample: tuple[float, ...] | None = None  # per-class repeat factor for 'oversample' (seed: COVID x3)
    augment: Literal["none", "mild", "seed"] = "mild"
    crop_border: float = 0.0  # crop this fraction from each side (then resize back): the seed's fix for text markers

    def replace(self, **changes) -> "PipelineSpec":
        return dataclasses.replace(self, **changes)
