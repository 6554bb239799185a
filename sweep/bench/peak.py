"""The machine's measured compute peak: a large matmul timed in the same process as the models."""
from __future__ import annotations

import time

import jax
import numpy as np


def matmul_peak(dtype: str = "float32", n: int = 2048, windows: int = 5, reps: int = 8) -> dict:
    """FLOP/s of an n x n @ n x n matmul in `dtype` (median of `windows` timed windows of `reps` calls)."""
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"peak dtype must be 'float32' or 'bfloat16', got {dtype!r}")
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (n, n), dtype)
    b = jax.random.normal(key_b, (n, n), dtype)
    matmul = jax.jit(lambda a, b: a @ b)
    matmul(a, b).block_until_ready()
    seconds = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(reps):
            out = matmul(a, b)
        out.block_until_ready()
        seconds.append((time.perf_counter() - start) / reps)
    per_call = float(np.median(seconds))
    return {"dtype": dtype, "n": n, "flops_per_s": 2.0 * n**3 / per_call, "best_flops_per_s": 2.0 * n**3 / min(seconds),
            "seconds_per_call": per_call}
