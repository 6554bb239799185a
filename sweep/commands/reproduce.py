"""`fusion-sweep reproduce`: the seed's three models under the seed's recipe, each report beside the paper's."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweep.commands.train import EXIT_BAD_INPUT, add_runtime_arguments, run_training, setup_runtime
from sweep.configs.seed_paper import CITATION, MODEL_TITLES, RECIPE, SEED_MODELS, paper_report_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", required=True, help="the COVID-19 Radiography Database (or a folder like it)")
    parser.add_argument("--image-size", type=int, default=RECIPE["image_size"])
    parser.add_argument("--epochs", type=int, default=RECIPE["epochs"], help="at most this many (early stopping)")
    parser.add_argument("--subset", type=int, default=None, help="at most this many images per class")
    parser.add_argument("--models", default=",".join(SEED_MODELS), help="comma-separated subset of cnn,resnet50v2,fusion")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bn-momentum", type=float, default=None,
                        help="BatchNorm momentum (default: Keras' 0.99 as the seed; scaled-down CPU runs of a few "
                             "hundred steps need 0.9, or eval-mode predictions collapse to one class)")
    parser.add_argument("--out", default="results/reproduce", help="one run folder per model inside")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    add_runtime_arguments(parser)


def seed_config(model: str, *, data_dir: str, image_size: int, epochs: int, subset: int | None, seed: int = 0,
                bn_momentum: float | None = None):
    """The seed's recipe for one of its three models."""
    from data.spec import DataSpec, PipelineSpec
    from models.spec import FusionSpec
    from sweep.configs.schema import EarlyStopping, OptimConfig, TrainConfig

    if model not in SEED_MODELS:
        raise ValueError(f"unknown seed model {model!r}; choose from {', '.join(SEED_MODELS)}")
    augmented = model in ("cnn", "fusion")  # in the seed augmentation reached only the CNN (and the CNN branch)
    return TrainConfig(
        model=model, fusion=FusionSpec(), resnet_head="flatten",
        data=DataSpec(source="radiography", data_dir=data_dir, classes=RECIPE["classes"], image_size=image_size,
                      subset=subset),
        pipeline=PipelineSpec(channels=3, normalization="unit", balance="oversample", oversample=RECIPE["oversample"],
                              augment="seed" if augmented else "none"),
        optim=OptimConfig(name=RECIPE["optimizer"], learning_rate=RECIPE["learning_rate"]),
        batch_size=RECIPE["batch_size"], epochs=epochs,
        early_stopping=EarlyStopping(metric="val_accuracy", mode="max", patience=RECIPE["patience"], restore_best=True),
        seed=seed, augment_cnn_only=model == "fusion", bn_momentum=bn_momentum,
    )


def side_by_side(left: str, right: str, left_title: str, right_title: str, gap: int = 4) -> str:
    left_lines, right_lines = left.rstrip("\n").splitlines(), right.rstrip("\n").splitlines()
    width = max(len(line) for line in left_lines + [left_title])
    rows = [f"{left_title:<{width}}{' ' * gap}{right_title}"]
    for i in range(max(len(left_lines), len(right_lines))):
        a = left_lines[i] if i < len(left_lines) else ""
        b = right_lines[i] if i < len(right_lines) else ""
        rows.append(f"{a:<{width}}{' ' * gap}{b}".rstrip())
    return "\n".join(rows)


def comparison_block(model: str, result, report: str) -> str:
    from sweep.configs.seed_paper import PAPER_REPORTS

    m = result.metrics
    paper = PAPER_REPORTS[model]
    head = f"== {MODEL_TITLES[model]} ({model}) =="
    body = side_by_side(report, paper_report_text(model), "this run (test split)", "the paper")
    tail = (f"accuracy {m['test_accuracy']:.2f} (paper {paper['accuracy']:.2f}); COVID recall "
            f"{m['test_recall_COVID']:.2f} (paper {paper['COVID']['recall']:.2f}); params {m['params']:,}; "
            f"{m['seconds_per_epoch']:.1f} s/epoch; {m['epochs_run']} epochs ({m['status']}, best {m['best_epoch']})")
    return "\n".join([head, body, tail, ""])


def run(args) -> int:
    from sweep.engine.run_outputs import write_text_atomic

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        configs = {m: seed_config(m, data_dir=args.data_dir, image_size=args.image_size, epochs=args.epochs,
                                  subset=args.subset, seed=args.seed, bn_momentum=args.bn_momentum) for m in models}
        from sweep.engine.train import check_config

        for config in configs.values():
            check_config(config)
        setup_runtime(args)
        from data.builder import prepare

        prepared = prepare(next(iter(configs.values())).data, progress=not args.no_progress)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT

    out_root = Path(args.out)
    blocks = [f"Reproduction of the seed paper at {args.image_size}px, up to {args.epochs} epochs"
              + (f", subset {args.subset}/class" if args.subset else "") + f"; data {args.data_dir}",
              f"Paper: {CITATION}", ""]
    for model, config in configs.items():
        print(f"\n### training {MODEL_TITLES[model]} into {out_root / model}", file=sys.stderr)
        result, code = run_training(config, out_root / model, overwrite=args.overwrite,
                                    progress=not args.no_progress, prepared=prepared,
                                    command_hint="the same reproduce command")
        if code:
            return code
        report = (out_root / model / "classification_report.txt").read_text()
        block = comparison_block(model, result, report)
        print(block)
        blocks.append(block)
    write_text_atomic(out_root / "comparison.txt", "\n".join(blocks) + "\n")
    print(f"comparison written to {out_root / 'comparison.txt'}")
    return 0
