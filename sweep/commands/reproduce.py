"""`fusion-sweep reproduce`: the seed's three models under the seed's recipe, each report beside the paper's."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweep import UsageError
from sweep.commands.common import (RUNS_ROOT, add_init_argument, add_runtime_arguments, add_set_argument,
                                   add_shorthands, setup_runtime, under)
from sweep.commands.train import TRAIN_FLAGS, check_out_dir, config_from_args, prepare_data, run_training
from sweep.configs.paper import seed_model_config
from sweep.configs.presets import get_preset
from sweep.configs.seed_paper import CITATION, MODEL_TITLES, PAPER_REPORTS, SEED_MODELS, paper_report_text
from sweep.files import write_text_atomic
from sweep.init_sources import check_init

REPRODUCE_FLAGS = under("", TRAIN_FLAGS, "--data-dir", "--image-size", "--epochs", "--subset", "--seed",
                        "--bn-momentum")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_shorthands(parser, REPRODUCE_FLAGS, get_preset("paper").train)
    parser.add_argument("--models", default=",".join(SEED_MODELS), help="comma-separated subset of "
                        + ",".join(SEED_MODELS))
    add_init_argument(parser, "train.init; the paper preset starts resnet50v2 from imagenet")
    add_set_argument(parser, "paper preset's TrainConfig")
    parser.add_argument("--out", default=str(RUNS_ROOT / "reproduce"), help="one run folder per model inside")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    add_runtime_arguments(parser)


def seed_configs(args) -> dict:
    """model -> TrainConfig: the paper preset's recipe with the flags applied, then made each seed model's."""
    if not args.data_dir:
        raise UsageError("reproduce needs --data-dir: the COVID-19 Radiography Database (or a folder like it)")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in SEED_MODELS]
    if unknown or not models:
        raise UsageError(f"--models {args.models!r}: choose from {', '.join(SEED_MODELS)}")
    recipe = config_from_args(args, base=get_preset("paper").train, shorthands=REPRODUCE_FLAGS)
    configs = {model: seed_model_config(recipe, model) for model in models}
    # the parents use whole backbones: a weights file must hold all of theirs, not only the fusion's cut
    check_init(recipe.init, [{"model": c.model, "cnn_cut": c.fusion.cnn_cut, "resnet_cut": c.fusion.resnet_cut}
                             for c in configs.values()])
    return configs


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
    m = result.metrics
    paper = PAPER_REPORTS[model]
    head = f"== {MODEL_TITLES[model]} ({model}) =="
    body = side_by_side(report, paper_report_text(model), "this run (test split)", "the paper")
    tail = (f"accuracy {m['test_accuracy']:.2f} (paper {paper['accuracy']:.2f}); COVID recall "
            f"{m['test_recall_COVID']:.2f} (paper {paper['COVID']['recall']:.2f}); params {m['params']:,}; "
            f"{m['seconds_per_epoch']:.1f} s/epoch; {m['epochs_run']} epochs ({m['status']}, best {m['best_epoch']})")
    return "\n".join([head, body, tail, ""])


def run(args) -> int:
    configs = seed_configs(args)
    setup_runtime(args)
    first = next(iter(configs.values()))
    out_root = Path(args.out)
    for model, config in configs.items():
        check_out_dir(config, out_root / model, args.overwrite)
    prepared = prepare_data(first.data, progress=not args.no_progress)
    data = first.data
    blocks = [f"Reproduction of the seed paper at {data.image_size}px, up to {first.epochs} epochs"
              + (f", subset {data.subset}/class" if data.subset else "") + f"; data {data.data_dir}",
              f"Paper: {CITATION}", ""]
    for model, config in configs.items():
        print(f"\n### training {MODEL_TITLES[model]} into {out_root / model}", file=sys.stderr)
        result, code = run_training(config, out_root / model, overwrite=args.overwrite,
                                    progress=not args.no_progress, prepared=prepared,
                                    command_hint="the same reproduce command")
        if code:
            return code
        block = comparison_block(model, result, (out_root / model / "classification_report.txt").read_text())
        print(block)
        blocks.append(block)
    write_text_atomic(out_root / "comparison.txt", "\n".join(blocks) + "\n")
    print(f"comparison written to {out_root / 'comparison.txt'}")
    return 0
