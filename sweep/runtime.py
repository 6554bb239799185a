"""Process-level setup that must happen before JAX starts: core pinning and the persistent compile cache."""
from __future__ import annotations

import os
from pathlib import Path

from data.builder import user_cache_dir  # one rule for every cache; data/ may not import sweep/


def pin_cores(n: int | None = None, cores: list[int] | None = None) -> list[int]:
    """Pin this process to `cores` (or the first `n` it may use). JAX on CPU ignores OMP_NUM_THREADS,
    so this is how a trial is kept to the cores it was given. Call before the first JAX operation."""
    allowed = sorted(os.sched_getaffinity(0))
    if cores is None:
        if n is None or n <= 0 or n >= len(allowed):
            return allowed
        cores = allowed[:n]
    os.sched_setaffinity(0, set(cores))
    return sorted(cores)


def enable_compilation_cache(cache_dir: str | os.PathLike | None = None) -> Path:
    """Turn on JAX's persistent compilation cache (on by default in every fusion-sweep command)."""
    import jax

    path = Path(cache_dir) if cache_dir else user_cache_dir() / "jax-compile"
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
