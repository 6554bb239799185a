"""Timed windows after warm-up, interleaved between candidates: the one way every figure in the benchmark is measured.

On a shared machine other processes' load drifts during a run, so candidates that are compared (ours and a peer,
two conv forms) take turns: window i runs each candidate once, in an order reversed every other window, and
every figure is the median over windows with its spread (min, max, quartiles). Each window records wall seconds
and the process's CPU seconds (all its threads) per step; CPU seconds are steadier under load.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

Window = Callable[[], tuple[float, float]]  # runs one window; returns (wall, cpu) seconds per step


def local_window(run: Callable[[int], None], steps: int) -> Window:
    """A window of `steps` calls of `run(k)` (which must block until done), timed in this process."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")

    def window() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        run(steps)
        return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps

    return window


def interleave(candidates: dict[str, Window], windows: int) -> dict[str, dict[str, list[float]]]:
    """{name: {"wall": [...], "cpu": [...]}} per step, one entry per window, the candidates taking turns."""
    if windows < 1:
        raise ValueError(f"windows must be >= 1, got {windows}")
    out = {name: {"wall": [], "cpu": []} for name in candidates}
    names = list(candidates)
    for i in range(windows):
        for name in names if i % 2 == 0 else names[::-1]:
            wall, cpu = candidates[name]()
            out[name]["wall"].append(wall)
            out[name]["cpu"].append(cpu)
    return out


def spread(values: list[float]) -> dict:
    """median, min, max and quartiles of per-window figures."""
    values = np.asarray(values, float)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(median), "min": float(values.min()), "max": float(values.max()),
            "q1": float(q1), "q3": float(q3)}


def summarize(samples: dict[str, list[float]], batch_size: int) -> dict:
    """images/s from the median window's wall time (and the best window's), CPU seconds per step, raw windows."""
    wall = spread(samples["wall"])
    out = {"images_per_s": batch_size / wall["median"], "best_images_per_s": batch_size / wall["min"],
           "seconds_per_step": wall["median"], "seconds_per_step_spread": wall,
           "windows_s": [round(s, 5) for s in samples["wall"]]}
    if samples.get("cpu"):
        out["cpu_seconds_per_step"] = float(np.median(samples["cpu"]))
        out["cpu_windows_s"] = [round(s, 5) for s in samples["cpu"]]
    return out


def ratio_windows(theirs: dict[str, list[float]], ours: dict[str, list[float]]) -> dict:
    """Their seconds / ours per window (above 1: we are faster), wall and CPU: median with spread."""
    wall = [t / o for t, o in zip(theirs["wall"], ours["wall"])]
    out = {"ratio": float(np.median(wall)), "wall": spread(wall), "windows": [round(r, 4) for r in wall]}
    if theirs.get("cpu") and ours.get("cpu"):
        cpu = [t / o for t, o in zip(theirs["cpu"], ours["cpu"])]
        out.update(cpu_ratio=float(np.median(cpu)), cpu=spread(cpu), cpu_windows=[round(r, 4) for r in cpu])
    return out


def time_windows(run: Callable[[int], None], *, steps: int, windows: int) -> dict[str, list[float]]:
    """One candidate alone: `windows` windows of `steps` calls; {"wall": [...], "cpu": [...]} per step."""
    return interleave({"run": local_window(run, steps)}, windows)["run"]


def steps_for(seconds_per_step: float, window_s: float, most: int = 50) -> int:
    """How many steps fill about `window_s` seconds (at least 1, at most `most`)."""
    return int(min(most, max(1, round(window_s / max(seconds_per_step, 1e-6)))))
