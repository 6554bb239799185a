"""Config as data: frozen dataclasses for one training run (TrainConfig) and for a sweep (SweepConfig)."""
from __future__ import annotations

import dataclasses
from typing import Literal

from data.spec import DataSpec, ExternalSpec, PipelineSpec
from models.spec import SEED_CNN_CUT, SEED_RESNET_CUT, FusionSpec

ModelName = str  # one of models.registry.MODEL_NAMES (check_config says so before any work)
PRECISIONS = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    name: Literal["rmsprop", "adam", "adamw", "sgd"] = "rmsprop"  # the seed: RMSprop(1e-4, rho .9, eps 1e-7)
    learning_rate: float = 1e-4
    rho: float = 0.9
    eps: float = 1e-7
    momentum: float = 0.9  # sgd
    weight_decay: float = 1e-4  # adamw
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: float = 0.0


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    metric: str = "val_accuracy"
    mode: Literal["max", "min"] = "max"
    patience: int = 5


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines one training run."""

    model: ModelName = "fusion"
    fusion: FusionSpec = FusionSpec()  # used when model == "fusion"; num_classes/image_size/channels come from data
    resnet_head: Literal["flatten", "gap"] = "flatten"  # head of the resnet50v2 parent (the seed: flatten)
    data: DataSpec = DataSpec()
    pipeline: PipelineSpec = PipelineSpec()
    optim: OptimConfig = OptimConfig()
    batch_size: int = 16
    eval_batch_size: int = 64
    epochs: int = 10
    early_stopping: EarlyStopping | None = EarlyStopping()
    # The epoch whose weights every reported metric of the run (val, test, external) comes from: "best" by the
    # monitored metric (early_stopping.metric, val_accuracy without early stopping), or "last".
    weights: Literal["best", "last"] = "best"
    seed: int = 0
    precision: Literal["float32", "bfloat16"] = "float32"  # bfloat16: compute in bf16, params in f32 (GPU)
    augment_cnn_only: bool = False  # the seed: augmentation reached only the CNN branch of its fusion
    # None keeps Keras' 0.99; with only tens of steps per run the moving statistics would still be mostly
    # their initial values (0.99**100 = 0.37) and eval-mode outputs collapse, so short runs use e.g. 0.9.
    bn_momentum: float | None = None
    # backbone (any of models.pretrained.BACKBONES) -> where its weights start: "scratch" (the default for a backbone
    # not named), "imagenet" (a published file from the weights cache) or a Keras file (.h5, .weights.h5,
    # .keras). A cut backbone takes its layers up to the cut; branches, heads and layers past a cut start fresh.
    init: dict[str, str] = dataclasses.field(default_factory=dict)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The grid a sweep draws fusion configurations from, plus the seed's own fusion unless include_seed_fusion is
    off."""

    cnn_cuts: tuple[str | None, ...] = ("block2_drop", SEED_CNN_CUT, "block4_drop")
    resnet_cuts: tuple[str | None, ...] = ("conv2_block3_out", SEED_RESNET_CUT, "conv4_block6_out")
    branch_widths: tuple[int, ...] = (256, 2048)
    head_widths: tuple[int, ...] = (256, 2048)
    # the two backbones fused (cnn_cuts / resnet_cuts are the cuts of the first / second); see docs/backbones.md
    backbones: tuple[str, ...] = ("cnn", "resnet50v2")
    # how the fusions join their two backbones (models.spec.FusionSpec.merge): the seed's "branches", or "concat"
    # (Rahimzadeh & Attar 2020; the concat-xception-resnet preset)
    merge: Literal["branches", "concat"] = "branches"
    include_parents: bool = True  # the CNN alone and ResNet50V2 alone as reference points
    include_seed_fusion: bool = True  # add the seed's own fusion when the grid lacks it (off in quick: time budget)


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    name: str = "quick"
    train: TrainConfig = TrainConfig()
    space: SearchSpace = SearchSpace()
    seeds: int = 1  # per configuration; all seeds of a configuration train in one Ray trial, one row each
    parent_seeds: int | None = None  # seeds of the two parents (None: `seeds`)
    # how a trial trains its seeds: one vectorised program ('vmap'), one compiled step reused per seed
    # ('sequential'), or 'auto' (vmap on GPU/TPU, sequential on CPU, where vmapped convolutions measured slower)
    seed_mode: Literal["auto", "vmap", "sequential"] = "auto"
    search: Literal["grid", "random"] = "grid"
    num_samples: int = 8  # random search only
    scheduler: Literal["fifo", "asha", "hyperband"] = "fifo"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    max_failures: int = 3  # restarts of a trial that failed (its worker died or it raised), from its last checkpoint
    checkpoint_every: int = 3  # Ray receives a trial's checkpoint every N epochs (and at its end): what a restart loses
    score_stopped: bool = False  # test metrics for the rows a scheduler stopped, from the weights their row reports
    explain_images: int = 4
    explain_max_evals: int = 300
    # evaluation-only sets every trial's selected weights are scored on (trials.csv's ext_<NAME>_* columns);
    # NAME matches [a-z0-9_]+. `fusion-sweep run --external NAME=DIR` adds folders.
    externals: dict[str, ExternalSpec] = dataclasses.field(default_factory=dict)
    # a star design instead of the grid: this configuration label and its one-factor neighbours along the space's
    # cut lists (sweep.configs.star); `fusion-sweep run --around LABEL` sets it
    around: str | None = None

    def replace(self, **changes) -> "SweepConfig":
        return dataclasses.replace(self, **changes)
