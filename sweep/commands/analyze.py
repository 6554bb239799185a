"""`fusion-sweep analyze RESULTS`: the scaling verdict of a results folder, from trials.csv (+ predictions.parquet)."""
from __future__ import annotations

import argparse
from pathlib import Path


def _size_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--at takes a size such as 10437570 or 1e7, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--at must be a positive size, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="a results folder holding trials.csv (and predictions.parquet, if written)")
    parser.add_argument("--size", choices=("params", "flops", "latency_ms"), default="params",
                        help="the size axis (default params)")
    parser.add_argument("--split", default="test", help="test (default) or ext:NAME, an external set of the sweep")
    parser.add_argument("--at", type=_size_value, default=None,
                        help="reference size for the per-halving change (default: the seed's fusion when the "
                             "sweep has it, else the median configuration)")
    parser.add_argument("--json", metavar="PATH", help="also write the analyze object (results contract) here")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the bootstraps (default 0)")


def run(args: argparse.Namespace) -> int:
    from sweep.analysis.answer import analyze
    from sweep.analysis.inputs import read_tables

    trials, predictions = read_tables(args.results)    # bad input raises InputError: one line, exit 2
    result = analyze(trials, predictions, size=args.size, split=args.split, at=args.at, seed=args.seed)
    print(result["verdict_text"])
    print()
    print(forms_table(result))
    print()
    print(best_table(result))
    if args.json:
        from sweep.files import write_json_atomic

        path = write_json_atomic(Path(args.json), result)
        print(f"\nwrote {path}")
    return 0


def forms_table(result: dict) -> str:
    """The fitted forms as plain text: AICc, leave-one-out error, bound flag, averaging weight."""
    if not result["forms"]:
        return "no fits (fewer than 3 distinct sizes)"
    lines = [f"{'form':<11} {'dAICc':>7} {'LOO pts':>8} {'tau pts':>8}  bound  weight"]
    weights = result.get("averaging_weights") or {}
    for form, fit in result["forms"].items():
        delta = "-" if fit["delta_aicc"] is None else f"{fit['delta_aicc']:.1f}"
        loo = "-" if fit["loo"] is None else f"{fit['loo']:.2f}"
        weight = f"{weights[form]:.2f}" if form in weights else "-"
        lines.append(f"{form:<11} {delta:>7} {loo:>8} {fit['between_config_sd']:>8.2f}  "
                     f"{'yes' if fit['at_bound'] else 'no':<5}  {weight}")
    return "\n".join(lines)


def best_table(result: dict) -> str:
    """Configurations not distinguishable from the best (paired on test images, Holm-corrected)."""
    rows = [r for r in result["against_best"] if not r["distinguishable"]]
    lines = ["not distinguishable from the best (one-sided, Holm, 5%):",
             f"{'configuration':<52} {'accuracy':>9} {'90% interval':>15} {'gap':>6} {'seeds':>5}"]
    for r in rows:
        lines.append(f"{r['config'][:52]:<52} {r['accuracy']:>9.1f} {r['lo']:>7.1f}-{r['hi']:<7.1f} "
                     f"{r['gap']:>6.1f} {r['seeds']:>5}")
    return "\n".join(lines)
