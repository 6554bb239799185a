"""`fusion-sweep train`: train and evaluate one model, with per-epoch progress and a final summary."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.registry import BUILDABLE_NAMES
from sweep import UsageError
from sweep.commands.common import (RUNS_ROOT, Shorthand, add_init_argument, add_runtime_arguments, add_set_argument,
                                   add_shorthands, build_config, by_field, check_data, setup_runtime, usage_errors)
from sweep.configs.presets import PRESETS, get_preset
from sweep.configs.schema import TrainConfig

EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130

MODEL_FLAGS = (Shorthand("--model", "model", f"one of {', '.join(BUILDABLE_NAMES)}"),
               Shorthand("--backbones", "fusion.backbone_a", "fusion: the two backbones A,B (default cnn,resnet50v2); "
                         "another pair gets linear branches and its middle default cuts"),
               *by_field("fusion.cnn_cut", "fusion.resnet_cut"),
               Shorthand("--cut-a", "fusion.cnn_cut", "fusion: backbone A's cut (--cnn-cut for the seed pair)"),
               Shorthand("--cut-b", "fusion.resnet_cut", "fusion: backbone B's cut (--resnet-cut for the seed pair)"),
               *by_field("fusion.branch_width", "fusion.head_width", "fusion.dropout", "resnet_head"))
DATA_FLAGS = (Shorthand("--data-dir", "data.data_dir", "radiography: the dataset folder", also=("data.source=radiography",)),
              Shorthand("--data", "data.source", "--data-dir alone means radiography"),
              *by_field("data.classes", "data.image_size", "data.subset", "data.num_images", "data.difficulty",
                        "pipeline.channels", "pipeline.balance", "pipeline.oversample", "pipeline.augment"),
              Shorthand("--augment-cnn-only", "augment_cnn_only", "augment only the CNN branch (the seed's fusion)",
                        "true"),
              *by_field("pipeline.crop_border", "pipeline.normalization"))
TRAINING_FLAGS = (Shorthand("--optimizer", "optim.name"), Shorthand("--lr", "optim.learning_rate"),
                  *by_field("optim.schedule", "optim.warmup_epochs", "batch_size", "eval_batch_size", "epochs"),
                  Shorthand("--patience", "early_stopping.patience", "early stopping patience (0: off)"),
                  *by_field("seed"),
                  Shorthand("--bn-momentum", "bn_momentum", "none: Keras' 0.99; runs of a few hundred steps want 0.9"),
                  *by_field("precision"))
TRAIN_FLAGS = MODEL_FLAGS + DATA_FLAGS + TRAINING_FLAGS
def backbone_settings(text: str) -> list[str]:
    """--backbones A,B: the pair, and for a pair other than the seed's, linear branches and each backbone's
    middle default cut (--cut-a / --cut-b, applied after, override them)."""
    from models.backbones import BACKBONES, default_cuts
    from models.spec import SEED_BACKBONES

    names = tuple(name.strip() for name in text.split(","))
    valid = ("cnn", *BACKBONES)
    if len(names) != 2 or any(name not in valid for name in names):
        raise UsageError(f"--backbones takes two of {', '.join(valid)} as A,B; got {text!r}")
    settings = [f"fusion.backbone_a={names[0]}", f"fusion.backbone_b={names[1]}"]
    if names != SEED_BACKBONES:
        settings += ["fusion.cnn_branch_activation=linear", "fusion.resnet_branch_activation=linear",
                     f"fusion.cnn_cut={default_cuts(names[0])[1]}", f"fusion.resnet_cut={default_cuts(names[1])[1]}"]
    return settings


SPECIAL_FLAGS = {  # --patience 0 is no early stopping at all
    "patience": lambda text: ["early_stopping=none"] if text.strip() in ("0", "none") else
    [f"early_stopping.patience={text}"],
    "backbones": backbone_settings,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--preset", default=None, choices=tuple(PRESETS),
                        help="start from a sweep preset's training recipe (default: TrainConfig's defaults)")
    for title, flags in (("model (a cut of 'none' drops that branch)", MODEL_FLAGS), ("data", DATA_FLAGS),
                         ("training", TRAINING_FLAGS)):
        add_shorthands(parser.add_argument_group(title), flags, defaults)
    add_init_argument(parser, "init")
    add_set_argument(parser, "TrainConfig")
    out = parser.add_argument_group("output")
    out.add_argument("--out", default=None, help=f"run folder (default: {RUNS_ROOT}/train/<model>-<data>-<size>px)")
    out.add_argument("--overwrite", action="store_true", help="discard what the out dir holds and start afresh")
    out.add_argument("--no-progress", action="store_true")
    add_runtime_arguments(parser)


def config_from_args(args, base: TrainConfig | None = None, shorthands: tuple[Shorthand, ...] = TRAIN_FLAGS) -> TrainConfig:
    """The TrainConfig of the command line: the base (a preset's recipe or the defaults), the shorthand flags,
    then --set. `--patience 0` turns early stopping off; `--data-dir` without `--data` reads radiography."""
    from sweep.engine.checks import check_config
    from sweep.init_sources import parse_init

    if base is None:
        base = get_preset(args.preset).train if getattr(args, "preset", None) else TrainConfig()
    config = build_config(base, args, shorthands, strip_prefix="train.", special=SPECIAL_FLAGS)
    config = config.replace(init=parse_init(getattr(args, "init", []) or [], config.init))
    check_config(config)
    return config


def default_out(config) -> Path:
    return RUNS_ROOT / "train" / f"{config.model}-{config.data.source}-{config.data.image_size}px"


def prepare_data(spec, progress: bool):
    """The prepared dataset, with bad paths and values reported as usage errors before any training."""
    from data.builder import prepare

    with usage_errors():
        return prepare(spec, progress=progress)


def run_training(config, out_dir: Path, *, overwrite: bool, progress: bool, prepared,
                 command_hint: str = "the same command"):
    """train_and_evaluate with the command line's outcomes: (Result | None, exit code)."""
    from sweep.engine.train import TrainingInterrupted, train_and_evaluate

    try:
        result = train_and_evaluate(config, out_dir=out_dir, overwrite=overwrite, progress=progress,
                                    prepared=prepared)
    except TrainingInterrupted as err:
        print(f"\ninterrupted: {err.last_epoch} finished epoch(s) are saved in {err.checkpoint_dir}; "
              f"run {command_hint} again to resume from there (or add --overwrite to start afresh)", file=sys.stderr)
        return None, EXIT_INTERRUPTED
    if result.status == "diverged":
        print(f"diverged: {result.metrics['message']} (out dir {out_dir})", file=sys.stderr)
        return result, EXIT_DIVERGED
    return result, 0


def tune_kernels(configs, num_classes: int) -> None:
    """This machine's conv forms measured before training when not yet stored (docs/autotune.md)."""
    from sweep.engine.autotune import tune_for_configs

    tune_for_configs(configs, num_classes, log=lambda text: print(text, file=sys.stderr, flush=True))


def print_summary(result, out_dir: Path) -> None:
    m = result.metrics
    print((out_dir / "classification_report.txt").read_text())
    print(f"status {m['status']}: {m['epochs_run']} epoch(s), best epoch {m['best_epoch']} "
          f"(val_accuracy {m['val_accuracy']:.4f}); test accuracy {m['test_accuracy']:.4f}, "
          f"balanced {m['test_balanced_accuracy']:.4f}, AUC {m['test_auc']:.4f}")
    print(f"params {m['params']:,} ({m['non_trainable_params']:,} non-trainable), "
          f"{m['flops'] / 1e9:.3f} GFLOPs/image, {m['seconds_per_epoch']:.1f} s/epoch, "
          f"{m['images_per_second']:.1f} train images/s, compile {m['compile_seconds']:.1f} s")
    print(f"outputs in {out_dir}")


def check_out_dir(config, out_dir: Path, overwrite: bool) -> None:
    """Refuse a run folder of another config before preparing data (--overwrite: it will be cleared)."""
    from sweep.configs.io import config_to_dict
    from sweep.engine.run_folder import check_reusable

    if not overwrite:
        check_reusable(config_to_dict(config), out_dir)


def run(args) -> int:
    from sweep.init_sources import check_init

    config = config_from_args(args)
    out_dir = Path(args.out) if args.out else default_out(config)
    check_out_dir(config, out_dir, args.overwrite)
    check_init(config.init, [{"model": config.model, "cnn_cut": config.fusion.cnn_cut,  # before JAX loads
                              "resnet_cut": config.fusion.resnet_cut, "backbone_a": config.fusion.backbone_a,
                              "backbone_b": config.fusion.backbone_b}])
    check_data(config.data)
    setup_runtime(args)
    prepared = prepare_data(config.data, progress=not args.no_progress)
    tune_kernels([config], len(prepared.classes))
    result, code = run_training(config, out_dir, overwrite=args.overwrite, progress=not args.no_progress,
                                prepared=prepared)
    if code == 0:
        print_summary(result, out_dir)
    return code
