"""`fusion-sweep report RESULTS`: rebuild scaling.json, pareto.csv, the plots and report.md of a sweep from its tables."""
from __future__ import annotations

import argparse
from pathlib import Path

from sweep.commands.common import usage_errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="a `fusion-sweep run` --out folder (holding trials.csv or trials.parquet)")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="bootstrap replicates per fitted form for the scaling test and intervals (default 1000)")


def run(args) -> int:
    from sweep.tune.results import read_trials

    results = Path(args.results)
    with usage_errors():  # no trials table there: nothing is written
        read_trials(results)
    from sweep.analysis.report import build_report, scaling_headline, summary_table  # plotting loads here

    written = build_report(results, bootstrap=args.bootstrap)
    print(summary_table(results))
    print()
    print(scaling_headline(results))
    print("\nwrote " + ", ".join(str(p) for p in written.values()))
    return 0
