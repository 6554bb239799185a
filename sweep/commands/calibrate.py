"""`fusion-sweep calibrate`: remake the calibration table of the scaling verdict from simulated sweeps of
issue 22's world (patients with several films, configuration scatter, curves outside the fitted forms)."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sweep.analysis.simulate import WORLD_TRUTHS

    parser.add_argument("--truth", nargs="+", choices=list(WORLD_TRUTHS), default=list(WORLD_TRUTHS),
                        help="truths to simulate (default: all five)")
    parser.add_argument("--sweeps", type=int, default=200, help="simulated sweeps per truth (default 200)")
    parser.add_argument("--n-configs", type=int, nargs="+", choices=(6, 8, 12), default=None,
                        help="configurations per sweep, one drawn per sweep (default: 6, 8 or 12)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates per analysis (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the simulation (default 0)")
    parser.add_argument("--no-stability", action="store_true",
                        help="skip the leave-one-configuration-out refits (faster; no fragile column)")
    parser.add_argument("--out", metavar="PATH", help="also write the Markdown table here")


def run(args: argparse.Namespace) -> int:
    from sweep import UsageError
    from sweep.analysis.calibrate import markdown, run_truths

    if args.sweeps < 1 or args.bootstrap < 50:
        raise UsageError(f"--sweeps must be >= 1 and --bootstrap >= 50, got {args.sweeps} and {args.bootstrap}")
    rows = run_truths(args.truth, args.sweeps, seed=args.seed, n_boot=args.bootstrap, n_configs=args.n_configs,
                      stability=not args.no_stability)
    table = markdown(rows, "fusion-sweep calibrate " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else []))
    print(table)
    if args.out:
        from sweep.files import write_text_atomic

        print(f"\nwrote {write_text_atomic(Path(args.out), table + chr(10))}")
    return 0
