"""`fusion-sweep train`: train and evaluate one model, with per-epoch progress and a final summary."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_OUT_ROOT = Path("results") / "runs"
EXIT_DIVERGED = 3
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="pin this process to N cores before JAX starts (default: all it may use)")
    parser.add_argument("--no-compile-cache", action="store_true", help="turn JAX's persistent compilation cache off")


def setup_runtime(args) -> None:
    """Pin cores and turn on the compilation cache; call before the first JAX operation."""
    from sweep.runtime import enable_compilation_cache, pin_cores

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        pin_cores(args.threads)
    if not args.no_compile_cache:
        enable_compilation_cache()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from models.spec import FusionSpec

    spec = FusionSpec()
    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=("cnn", "resnet50v2", "fusion"), default="fusion")
    model.add_argument("--cnn-cut", default=spec.cnn_cut, help="CNN layer to cut after ('none': no CNN branch)")
    model.add_argument("--resnet-cut", default=spec.resnet_cut, help="ResNet50V2 layer to cut at ('none': no branch)")
    model.add_argument("--branch-width", type=int, default=spec.branch_width)
    model.add_argument("--head-width", type=int, default=spec.head_width)
    model.add_argument("--dropout", type=float, default=spec.dropout)
    model.add_argument("--resnet-head", choices=("flatten", "gap"), default="flatten")
    data = parser.add_argument_group("data")
    data.add_argument("--data", choices=("synthetic", "radiography"), default="synthetic")
    data.add_argument("--data-dir", default=None, help="radiography: the dataset folder")
    data.add_argument("--classes", default="COVID,Normal", help="comma-separated, in label order")
    data.add_argument("--image-size", type=int, default=64)
    data.add_argument("--subset", type=int, default=None, help="at most this many images per class")
    data.add_argument("--num-images", type=int, default=2000, help="synthetic: images to generate")
    data.add_argument("--channels", type=int, choices=(1, 3), default=3)
    data.add_argument("--balance", choices=("none", "oversample", "class_weight"), default="none")
    data.add_argument("--oversample", default=None, help="per-class repeat factors, e.g. 3,1 (with --balance oversample)")
    data.add_argument("--augment", choices=("none", "mild", "seed"), default="mild")
    data.add_argument("--augment-cnn-only", action="store_true", help="augment only the CNN branch (the seed's fusion)")
    data.add_argument("--crop-border", type=float, default=0.0)
    data.add_argument("--normalization", choices=("unit", "symmetric"), default="unit")
    train = parser.add_argument_group("training")
    train.add_argument("--optimizer", default="rmsprop", help="rmsprop (the seed), adam, adamw or sgd")
    train.add_argument("--lr", type=float, default=1e-4)
    train.add_argument("--schedule", default="constant", help="constant or cosine")
    train.add_argument("--warmup-epochs", type=float, default=0.0)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--eval-batch-size", type=int, default=64)
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--patience", type=int, default=5, help="early stopping patience on val accuracy (0: off)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--bn-momentum", type=float, default=None,
                       help="BatchNorm momentum (default: Keras' 0.99; runs of a few hundred steps want 0.9)")
    train.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    out = parser.add_argument_group("output")
    out.add_argument("--out", default=None, help=f"run folder (default: {DEFAULT_OUT_ROOT}/<model>-<data>-<size>px)")
    out.add_argument("--overwrite", action="store_true", help="discard what the out dir holds and start afresh")
    out.add_argument("--no-progress", action="store_true")
    add_runtime_arguments(parser)


def _none(value: str | None) -> str | None:
    return None if value is None or value.lower() in ("none", "") else value


def config_from_args(args):
    """The TrainConfig the flags describe."""
    from data.spec import DataSpec, PipelineSpec
    from models.spec import FusionSpec
    from sweep.configs.schema import EarlyStopping, OptimConfig, TrainConfig

    oversample = tuple(float(x) for x in args.oversample.split(",")) if args.oversample else None
    return TrainConfig(
        model=args.model,
        fusion=FusionSpec(cnn_cut=_none(args.cnn_cut), resnet_cut=_none(args.resnet_cut),
                          branch_width=args.branch_width, head_width=args.head_width, dropout=args.dropout),
        resnet_head=args.resnet_head,
        data=DataSpec(source=args.data, data_dir=args.data_dir,
                      classes=tuple(c.strip() for c in args.classes.split(",") if c.strip()),
                      image_size=args.image_size, subset=args.subset, num_images=args.num_images),
        pipeline=PipelineSpec(channels=args.channels, normalization=args.normalization, balance=args.balance,
                              oversample=oversample, augment=args.augment, crop_border=args.crop_border),
        optim=OptimConfig(name=args.optimizer, learning_rate=args.lr, schedule=args.schedule,
                          warmup_epochs=args.warmup_epochs),
        batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, epochs=args.epochs,
        early_stopping=EarlyStopping(patience=args.patience) if args.patience > 0 else None,
        seed=args.seed, precision=args.precision, augment_cnn_only=args.augment_cnn_only,
        bn_momentum=args.bn_momentum,
    )


def default_out(config) -> Path:
    return DEFAULT_OUT_ROOT / f"{config.model}-{config.data.source}-{config.data.image_size}px"


def run_training(config, out_dir: Path, *, overwrite: bool, progress: bool, prepared=None,
                 command_hint: str = "the same command"):
    """train_and_evaluate with the command-line's error handling: (Result | None, exit code)."""
    from sweep.engine.train import ConfigMismatch, TrainingInterrupted, train_and_evaluate

    try:
        result = train_and_evaluate(config, out_dir=out_dir, overwrite=overwrite, progress=progress,
                                    prepared=prepared)
    except (ConfigMismatch, ValueError, FileNotFoundError, NotADirectoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return None, EXIT_BAD_INPUT
    except TrainingInterrupted as err:
        print(f"\ninterrupted: {err.last_epoch} finished epoch(s) are saved in {err.checkpoint_dir}; "
              f"run {command_hint} again to resume from there (or add --overwrite to start afresh)", file=sys.stderr)
        return None, EXIT_INTERRUPTED
    if result.status == "diverged":
        print(f"diverged: {result.metrics['message']} (out dir {out_dir})", file=sys.stderr)
        return result, EXIT_DIVERGED
    return result, 0


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


def run(args) -> int:
    try:
        config = config_from_args(args)
        from sweep.engine.train import check_config

        check_config(config)
        setup_runtime(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out_dir = Path(args.out) if args.out else default_out(config)
    result, code = run_training(config, out_dir, overwrite=args.overwrite, progress=not args.no_progress)
    if code == 0:
        print_summary(result, out_dir)
    return code
