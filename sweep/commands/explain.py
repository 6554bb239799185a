"""`fusion-sweep explain RESULTS`: SHAP explanations, shortcut and lesion scores for a sweep's trials."""
from __future__ import annotations

import argparse
from pathlib import Path

from sweep import UsageError
from sweep.commands.common import usage_errors
from sweep.explain.options import check_masker


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="a `fusion-sweep run` --out folder (trials.csv, pareto.csv, trials/<id>/)")
    parser.add_argument("--trials", default="pareto+parents",
                        help="pareto | parents | pareto+parents | all | ID,ID,... (default: pareto+parents)")
    parser.add_argument("--images", type=int, default=4, help="class-balanced test images, the same for every model")
    parser.add_argument("--max-evals", type=int, default=300, help="model evaluations per image (the seed: 100000)")
    parser.add_argument("--masker", default="blur(16,16)", help="blur(k,k) | inpaint_telea | inpaint_ns")
    parser.add_argument("--class", dest="class_mode", choices=("true", "pred"), default="true",
                        help="attribute the true class or the predicted one")
    parser.add_argument("--batch-size", type=int, default=64, help="largest predict batch (powers of two below it)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image sample")


def run(args) -> int:
    if args.images < 1 or args.max_evals < 3 or args.batch_size < 1:
        raise UsageError(f"need --images >= 1, --max-evals >= 3 and --batch-size >= 1, got {args.images}, "
                         f"{args.max_evals}, {args.batch_size}")
    if not Path(args.results).is_dir():
        raise UsageError(f"{args.results} is not a folder: give a `fusion-sweep run` --out folder (trials.csv, "
                         "trials/<id>/)")
    check_masker(args.masker)
    from sweep.explain import runner  # SHAP and JAX load here, after the cheap checks
    from sweep.runtime import enable_compilation_cache

    with usage_errors():
        runner.trial_dirs(args.results, runner.select_trials(args.results, args.trials))
    enable_compilation_cache()
    with usage_errors():  # e.g. more images than the test split has: found before any SHAP work
        summary = runner.explain_results(Path(args.results), trials=args.trials, images=args.images,
                                         max_evals=args.max_evals, masker=args.masker, class_mode=args.class_mode,
                                         seed=args.seed, batch_size=args.batch_size)
    print(summary.section)
    print(f"wrote {summary.out_dir}/summary.csv, agreement.csv, section.md")
    return 0
