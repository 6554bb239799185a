"""The process and what it runs on: core pinning, XLA's CPU compile level and the compile cache (before JAX starts),
and the facts a results file records about it (hardware, package versions, git commit, the device that computed)."""
from __future__ import annotations

import glob
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


# LLVM optimisation level 1 instead of XLA's default 2 on CPU: the compile of a train step takes 30-45% less time
# (CNN 64 px: 12.2-12.6 s -> 6.8-7.7 s; ResNet50V2 16.4-17.1 -> 11.7-15.1 s) and the steps run as fast (train and
# eval images/s within the run-to-run spread; `fusion-sweep bench --quick --models cnn,resnet50v2,fusion`, two
# interleaved A/B runs). A sweep compiles one program per configuration, so on CPU this is minutes per sweep.
CPU_XLA_FLAGS = ("--xla_backend_optimization_level=1",)
_ACCELERATOR_NODES = ("/dev/nvidia[0-9]*", "/dev/accel[0-9]*", "/dev/kfd")


def accelerator_visible() -> bool:
    """Whether this machine shows a GPU/TPU device node (JAX would then compute there); no JAX needed."""
    platforms = os.environ.get("JAX_PLATFORMS", "").strip().lower()
    if platforms:
        return platforms.split(",")[0] != "cpu"
    return any(glob.glob(pattern) for pattern in _ACCELERATOR_NODES)


def use_cpu_compile_flags() -> str:
    """Add CPU_XLA_FLAGS to XLA_FLAGS (a flag the user already set keeps the user's value) when this process will
    compute on CPU; call before JAX starts. Returns XLA_FLAGS as it now is."""
    current = os.environ.get("XLA_FLAGS", "")
    if accelerator_visible():
        return current
    named = {flag.split("=")[0] for flag in current.split()}
    extra = [flag for flag in CPU_XLA_FLAGS if flag.split("=")[0] not in named]
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([*current.split(), *extra])
    return os.environ.get("XLA_FLAGS", "")


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

# The instruction-set extensions that decide which kernels are fast (x86 flags and ARM features as /proc/cpuinfo
# names them): two CPUs sold under one name ("AMD EPYC") differ here.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl",
             "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx512vbmi", "avx_vnni", "amx_tile", "amx_bf16",
             "amx_int8", "asimd", "asimddp", "sve", "sve2", "bf16", "i8mm")
_CPUINFO_FIELDS = {"vendor_id": "cpu_vendor", "cpu family": "cpu_family", "model": "cpu_model_number",
                   "stepping": "cpu_stepping", "model name": "cpu_model", "CPU implementer": "cpu_vendor",
                   "CPU architecture": "cpu_family", "CPU part": "cpu_model_number", "CPU revision": "cpu_stepping"}


def cpu_facts(cpuinfo: str | None = None) -> dict:
    """The CPU as /proc/cpuinfo's first processor gives it: vendor, family, model number, stepping, model name,
    the ISA_FLAGS it has, and the cores this process may use; no JAX needed."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    facts: dict = {"cpu_vendor": None, "cpu_family": None, "cpu_model_number": None, "cpu_stepping": None,
                   "cpu_model": platform.processor() or None}
    flags: set[str] = set()
    for line in cpuinfo.split("\n\n")[0].splitlines():
        name, _, value = (part.strip() for part in line.partition(":"))
        if name in _CPUINFO_FIELDS:
            facts[_CPUINFO_FIELDS[name]] = value
        elif name in ("flags", "Features"):
            flags |= set(value.split())
    facts["isa_flags"] = [flag for flag in ISA_FLAGS if flag in flags]
    facts["avx512"] = "avx512f" in flags
    facts["usable_cores"] = len(os.sched_getaffinity(0))
    return facts


def hardware() -> dict:
    """CPU (cpu_facts), cores (all and usable by this process), memory, OS; no JAX needed."""
    info = {"machine": platform.machine(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            **cpu_facts()}
    for path, key, parse in (("/proc/meminfo", "MemTotal", lambda v: round(int(v.split()[0]) / 2**20, 1)),):
        try:
            line = next((line for line in Path(path).read_text().splitlines() if line.startswith(key)), None)
        except OSError:
            continue
        if line is not None:
            info["memory_gib"] = parse(line.split(":", 1)[1].strip())
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


# untracked files count as a change only here: new code changes what a run does; a new results folder does not
CODE_PATHS = ("models", "data", "sweep", "pyproject.toml")


def git_state(exclude: str | os.PathLike | None = None, root: str | os.PathLike = REPO_ROOT) -> dict | None:
    """The project's checkout as a results file records it: {"commit": HEAD, "dirty": bool, "changed": [paths
    relative to the checkout]}; None outside git. A path counts as changed when it differs from HEAD (tracked) or is
    an untracked, unignored file of the code. `exclude` (a run's own --out folder) is left out, so a run that
    rewrites a tracked results folder does not call its own checkout dirty. Take it before the run writes anything."""
    root = Path(root)
    spec = ["--", "."]
    if exclude is not None:
        try:
            inside = Path(exclude).resolve().relative_to(root.resolve())
        except ValueError:  # an --out outside the checkout cannot make it dirty
            inside = None
        if inside is not None and inside.parts:
            spec.append(f":(exclude){inside.as_posix()}")
    try:
        head = _git(root, "rev-parse", "HEAD")
        changed = _git(root, "diff", "HEAD", "--name-only", "-z", *spec).split("\0")
        code = [p for p in CODE_PATHS if (root / p).exists()]
        if code:
            changed += _git(root, "ls-files", "--others", "--exclude-standard", "-z", *spec[:1], *code,
                            *spec[2:]).split("\0")
    except (OSError, subprocess.SubprocessError):
        return None
    changed = sorted({path for path in changed if path})
    return {"commit": head.strip(), "dirty": bool(changed), "changed": changed}


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5)
    if done.returncode != 0:
        raise subprocess.SubprocessError(done.stderr.strip())
    return done.stdout


def git_commit(state: dict | None = None) -> str | None:
    """HEAD of the project's checkout, with '+dirty' when it has changes (see git_state); None outside git."""
    state = git_state() if state is None else state
    if not state:
        return None
    return state["commit"] + ("+dirty" if state["dirty"] else "")
