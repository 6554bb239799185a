"""Timed windows after warm-up: the one way every figure in the benchmark is measured."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def time_windows(run: Callable[[int], None], *, steps: int, windows: int) -> list[float]:
    """Seconds per step in each of `windows` windows of `steps` calls; `run(k)` does k steps and blocks."""
    if steps < 1 or windows < 1:
        raise ValueError(f"steps and windows must be >= 1, got steps={steps}, windows={windows}")
    per_step = []
    for _ in range(windows):
        start = time.perf_counter()
        run(steps)
        per_step.append((time.perf_counter() - start) / steps)
    return per_step


def summarize(per_step: list[float], batch_size: int) -> dict:
    """images/s from the median window (and the best one), plus the raw windows."""
    median = float(np.median(per_step))
    return {"images_per_s": batch_size / median, "best_images_per_s": batch_size / min(per_step),
            "seconds_per_step": median, "windows_s": [round(s, 5) for s in per_step]}
