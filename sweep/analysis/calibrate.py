"""The calibration table of issue 22's world: simulated sweeps of every truth through the analysis, their rates.

A sweep of the world (simulate.World) has 6, 8 or 12 configurations over two decades of size, 3 seeds each,
~170 test patients with 1-4 films, configurations scattered around the curve and one unstable configuration.
Per truth: how often the verdict names its class, how often a constant is called related, how often the 90%
per-halving interval covers the true change (overall and by number of configurations), and how often the verdict
is fragile (fewer than 80% of leave-one-configuration-out refits keep it). `fusion-sweep calibrate` prints it.
"""
from __future__ import annotations

import os
import time

import numpy as np

from sweep.analysis.simulate import WORLD_TRUTHS, World, calibration

# the targets of issue 22 (the checks the table is read against)
TARGETS = {"constant_related": 0.08, "constant_insufficient": 0.50, "linear_right": 0.50, "curved_right": 0.60,
           "coverage": (0.85, 0.97), "coverage_each": 0.80}


def run_truths(truths, sweeps: int, *, seed: int = 0, n_boot: int = 1000, n_configs=None, stability: bool = True,
               say=print) -> list[dict]:
    """One row of rates per truth name (WORLD_TRUTHS), each from `sweeps` simulated sweeps of the world."""
    world = World(n_configs=tuple(n_configs)) if n_configs else World()
    rows = []
    for k, name in enumerate(truths):
        start = time.time()
        rates = calibration(WORLD_TRUTHS[name], world, sweeps, seed=seed * 1_000 + k, n_boot=n_boot,
                            stability=stability)
        rows.append({"truth": name, **rates, "seconds": round(time.time() - start)})
        say(f"{name}: {row_text(rows[-1])}")
    return rows


def row_text(row: dict) -> str:
    return (f"right {row['right']:.1%}, related {row['related']:.1%}, insufficient "
            f"{row['counts']['insufficient_data'] / row['sweeps']:.1%}, coverage {row['coverage']:.1%}, "
            f"median width {row['median_width']:.2f} points ({row['sweeps']} sweeps, {row['seconds']} s)")


def coverage_by_configs(runs: list[dict]) -> dict[int, tuple[float, int]]:
    """{number of configurations: (coverage, sweeps)}."""
    out = {}
    for c in sorted({r["n_configs"] for r in runs}):
        mine = [r["covered"] for r in runs if r["n_configs"] == c]
        out[c] = (float(np.mean(mine)), len(mine))
    return out


def fragile_share(runs: list[dict]) -> float | None:
    values = [r["stability"] for r in runs if r.get("stability") is not None]
    return float(np.mean([v < 0.8 for v in values])) if values else None


def markdown(rows: list[dict], command: str) -> str:
    """The calibration table: one row per truth, then overall coverage, the command and the machine's load."""
    sizes = sorted({r["n_configs"] for row in rows for r in row["runs"]})
    lines = ["| truth | verdict names its class | called related | insufficient_data | 90% interval coverage | "
             + " | ".join(f"coverage at {c} configs" for c in sizes)
             + " | median width (points) | mean error (points) | fragile verdicts | sweeps |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(sizes) + "---:|---:|---:|---:|"]
    for row in rows:
        by = coverage_by_configs(row["runs"])
        fragile = fragile_share(row["runs"])
        lines.append(f"| {row['truth']} | {row['right']:.1%} | {row['related']:.1%} | "
                     f"{row['counts']['insufficient_data'] / row['sweeps']:.1%} | {row['coverage']:.1%} | "
                     + " | ".join(f"{by[c][0]:.0%} of {by[c][1]}" if c in by else "–" for c in sizes)
                     + f" | {row['median_width']:.2f} | {row['mean_error']:+.2f} | "
                     f"{'–' if fragile is None else f'{fragile:.0%}'} | {row['sweeps']} |")
    covered = [r["covered"] for row in rows for r in row["runs"]]
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return "\n".join(lines) + (f"\n\nOverall 90% interval coverage: {np.mean(covered):.1%} of {len(covered)} sweeps."
                               f"\n\n`{command}` (load average at the end: {load})")
