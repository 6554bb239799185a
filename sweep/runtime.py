"""The process and what it runs on: core pinning and the compile cache (before JAX starts), and the facts a
results file records about it (hardware, package versions, git commit, the device that computed)."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from data.builder import user_cache_dir  # one rule for every cache; data/ may not import sweep/

REPO_ROOT = Path(__file__).resolve().parents[1]
RECORDED_PACKAGES = ("fusion-sweep", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "ray", "numpy", "pandas",
                     "scipy", "shap", "grain", "tensorflow-datasets", "matplotlib")


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
    import jax  # the one place this module loads JAX: callers set up the process first

    path = Path(cache_dir) if cache_dir else user_cache_dir() / "jax-compile"
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


# ---------------------------------------------------------------- facts recorded beside results

def hardware() -> dict:
    """CPU model, cores (all and usable by this process), memory, OS; no JAX needed."""
    info = {"machine": platform.machine(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0))}
    for path, key, parse in (("/proc/cpuinfo", "model name", lambda v: v),
                             ("/proc/meminfo", "MemTotal", lambda v: round(int(v.split()[0]) / 2**20, 1))):
        try:
            line = next((line for line in Path(path).read_text().splitlines() if line.startswith(key)), None)
        except OSError:
            continue
        if line is not None:
            info["cpu_model" if key == "model name" else "memory_gib"] = parse(line.split(":", 1)[1].strip())
    return info


def jax_devices() -> dict:
    """The backend and devices JAX computes on (loads JAX)."""
    import jax

    return {"jax_backend": jax.default_backend(), "jax_devices": [str(d) for d in jax.devices()]}


def device_description() -> str:
    """e.g. "this machine's CPU (2 cores)" or "NVIDIA H100 80GB HBM3 (gpu)": where timings were measured."""
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"this machine's CPU ({len(os.sched_getaffinity(0))} cores)"
    return f"{getattr(device, 'device_kind', device.platform)} ({device.platform})"


def versions() -> dict[str, str]:
    """Python and the installed versions of the packages that shape results (read from metadata, not imported)."""
    found = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def git_commit() -> str | None:
    """HEAD of the project's checkout, with '+dirty' when tracked files differ from it; None outside git."""
    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5)
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
