"""`fusion-sweep report RESULTS`: rebuild pareto.csv, the plots and report.md of a sweep from its tables alone."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="a `fusion-sweep run` --out folder (holding trials.csv or trials.parquet)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the scaling intervals")


def run(args) -> int:
    from sweep.analysis.report import build_report, scaling_headline, summary_table

    results = Path(args.results)
    try:
        written = build_report(results, bootstrap=args.bootstrap)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary_table(results))
    print()
    print(scaling_headline(results))
    print("\nwrote " + ", ".join(str(p) for p in written.values()))
    return 0
