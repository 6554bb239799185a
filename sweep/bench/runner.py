"""One benchmark run: peak, every model's steps, compile cache, pipeline, SHAP, Ray and the Keras peer."""
from __future__ import annotations

import dataclasses
import datetime
import os
import time
import traceback
from typing import Callable

import jax

from models.registry import MODEL_NAMES
from sweep import runtime
from sweep.bench import peak, report, steps

DEVICES = ("cpu", "gpu")
PEERS = ("keras",)
SECTIONS = ("steps", "compile", "pipeline", "shap", "ray", "seeds", "checkpoints", "flops")  # what --skip may leave out


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    """What to measure. Defaults are the full CPU run; quick() and for_device() derive the others."""

    device: str = "cpu"
    quick: bool = False
    models: tuple[str, ...] = MODEL_NAMES
    sizes: tuple[int, ...] = (64, 128)
    batch_sizes: tuple[int, ...] = (32, 16)
    windows: int = 5
    window_s: float = 3.0
    peer: str | None = None
    peer_python: str | None = None
    peer_models: tuple[str, ...] = MODEL_NAMES
    compile_model: str = "resnet50v2"
    ray_trials: int = 8
    seeds_k: int = 4  # section seeds: K seeds vectorised vs K sequential runs
    shap_images: int = 2
    shap_max_evals: int = 64
    pipeline_seconds: float = 5.0
    pipeline_images: int = 2000  # synthetic images the pipeline section streams (prepared once per size)
    peak_n: int | None = None  # matmul size for the peak (default 2048 on CPU, 4096 on GPU)
    skip: tuple[str, ...] = ()  # any of SECTIONS ("steps": the per-model train/eval timings)

    @staticmethod
    def for_device(device: str, quick: bool, **overrides) -> "BenchOptions":
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        base: dict = {"device": device, "quick": quick}
        if device == "gpu":
            base.update(sizes=(256,), batch_sizes=(128, 32))
        if quick:
            base.update(sizes=base.get("sizes", (64,))[:1] if device == "gpu" else (64,),
                        batch_sizes=base.get("batch_sizes", (32,))[:1] if device == "gpu" else (32,),
                        windows=3, window_s=1.0, pipeline_seconds=2.0, pipeline_images=500, shap_max_evals=32,
                        peer_models=("resnet50v2",), compile_model="cnn", skip=("flops", "checkpoints"))
        base.update({k: v for k, v in overrides.items() if v is not None})
        return BenchOptions(**base)


def _guard(name: str, fn: Callable[[], dict], log: Callable[[str], None]) -> dict:
    """Run one section; an exception becomes {"error": ...} so one broken part does not lose the rest."""
    log(f"[bench] {name} ...")
    start = time.perf_counter()
    try:
        out = fn()
    except Exception as err:  # noqa: BLE001 - recorded in the JSON
        out = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=4)}
    out["section_s"] = round(time.perf_counter() - start, 2)
    log(f"[bench] {name} done in {out['section_s']:.1f} s")
    return out


def run_bench(options: BenchOptions, log: Callable[[str], None] = print,
              checkpoint: Callable[[dict], None] | None = None) -> dict:
    """Every figure of one run, as a JSON-ready dict (see sweep/commands/bench.py for the CLI).
    Order: peak, the models at the first image size, the overheads, the peer, then the larger sizes (slowest last);
    `checkpoint(result)` is called after each section, so a run cut short still leaves what it measured."""
    _check(options)
    result: dict = {
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "complete": False, "options": dataclasses.asdict(options), "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load": {"before": [round(x, 2) for x in os.getloadavg()], "cores_note":
                 "1-minute load average above the usable core count means other processes shared the CPU"},
        "hardware": report.hardware(), "versions": runtime.versions(), "models": [],
    }

    def save() -> None:
        result["targets"] = targets(result)
        result["load"]["after"] = [round(x, 2) for x in os.getloadavg()]
        if checkpoint is not None:
            checkpoint(result)

    gpu = options.device == "gpu"
    if gpu and jax.default_backend() != "gpu":
        raise RuntimeError(f"--device gpu asked for, but jax's backend is {jax.default_backend()!r}")
    result["peak"] = _guard("peak matmul", lambda: peak.matmul_peak(
        _precision(options), n=options.peak_n or (4096 if gpu else 2048)), log)
    # The best window: on a shared box the median peak drops with other processes' load, and a model measured in
    # a quieter moment would then appear to beat the machine.
    result["peak"]["fraction_basis"] = "best_flops_per_s"
    if "steps" not in options.skip:
        _measure_size(options, options.sizes[0], result, save, log)
    _overheads(options, result, save, log)
    if options.peer == "keras":
        _peers(options, result, save, log)
    for size in options.sizes[1:] if "steps" not in options.skip else ():
        _measure_size(options, size, result, save, log)
    result["complete"] = True
    result["finished_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    save()
    return result


def _check(options: BenchOptions) -> None:
    bad = [m for m in options.models if m not in MODEL_NAMES]
    if bad:
        raise ValueError(f"unknown bench models {bad}; choose from {MODEL_NAMES}")
    if options.peer not in (None, *PEERS):
        raise ValueError(f"peer must be one of {PEERS}, got {options.peer!r}")


def _precision(options: BenchOptions) -> str:
    return "bfloat16" if options.device == "gpu" else "float32"


def _measure_size(options: BenchOptions, size: int, result: dict, save, log) -> None:
    """Every model at every batch size at this image size, each row saved as soon as it is measured."""
    peak_flops = result["peak"].get("best_flops_per_s") or result["peak"].get("flops_per_s")
    for batch in options.batch_sizes:
        for name in options.models:
            row = _guard(f"{name} {size}px batch {batch}", lambda: steps.measure_model(
                name, image_size=size, batch_size=batch, window_s=options.window_s, windows=options.windows,
                precision=_precision(options), peak_flops_per_s=peak_flops), log)
            row.setdefault("model", name)
            row.setdefault("image_size", size)
            row.setdefault("batch_size", batch)
            row["load_after"] = [round(x, 2) for x in os.getloadavg()]
            result["models"].append(row)
            save()


def _overheads(options: BenchOptions, result: dict, save, log) -> None:
    """Compile cache, input pipeline, SHAP, Ray and the params-vs-FLOPs story, each unless skipped. Each section
    imports what it measures only when it runs: the GPU path keeps ray, shap and tensorflow_datasets out."""
    size0, batch0 = options.sizes[0], options.batch_sizes[0]
    gpu = options.device == "gpu"
    if "compile" not in options.skip:
        from sweep.bench.compile import compile_cache_check

        result["compile_cache"] = _guard("compile cache", lambda: compile_cache_check(
            options.compile_model, size0, batch0), log)
        save()
    if gpu:
        note = "skipped on the GPU path: it keeps ray, shap, grain, cv2 and tensorflow_datasets out of the process"
        result["shap"], result["ray"], result["pipeline"] = {"skipped": note}, {"skipped": note}, {"skipped": note}
        result["checkpoints"] = {"skipped": note}
    else:
        if "pipeline" not in options.skip:
            from sweep.bench import pipeline

            result["pipeline"] = _guard("input pipeline", lambda: pipeline.pipeline_by_size(
                options.sizes, batch0, options.pipeline_seconds, options.pipeline_images), log)
            save()
        if "shap" not in options.skip:
            from sweep.bench.explain_cost import shap_cost

            result["shap"] = _guard("shap overhead", lambda: shap_cost(
                "cnn", size0, images=options.shap_images, max_evals=options.shap_max_evals), log)
            save()
        if "ray" not in options.skip:
            from sweep.bench.ray_overhead import ray_overhead

            result["ray"] = _guard("ray overhead", lambda: ray_overhead(options.ray_trials), log)
            save()
        if "checkpoints" not in options.skip:
            from sweep.bench.checkpoints import checkpoint_traffic

            result["checkpoints"] = _guard("checkpoint traffic of sweep trials", lambda: checkpoint_traffic(
                size0, models=options.models), log)
            save()
    if "seeds" not in options.skip:
        from sweep.bench.seeds import seeds_speed

        # CPU: the quick preset's size, which sets a CPU sweep's default; GPU: the bench's size and batch
        size, batch = (size0, batch0) if gpu else (32, 16)
        result["seeds"] = _guard(f"seeds: {options.seeds_k} vmapped vs sequential", lambda: seeds_speed(
            image_size=size, batch_size=batch, seeds=options.seeds_k, windows=options.windows,
            window_s=options.window_s), log)
        save()
    if "flops" not in options.skip:
        from sweep.bench.flops_story import seed_flops_vs_params

        result["flops_vs_params"] = _guard("params vs FLOPs at 256 px", lambda: seed_flops_vs_params(256), log)
        save()


def _peers(options: BenchOptions, result: dict, save, log) -> None:
    """The same models in Keras 3 (one subprocess per backend), and our/peer ratios."""
    from sweep.bench.peer import peer_pythons, peer_ratios, run_peer

    size0, batch0 = options.sizes[0], options.batch_sizes[0]
    peers: dict = {}
    result["peers"] = peers
    for backend, python in peer_pythons(options.peer_python).items():
        peers["keras_" + backend] = _guard(f"keras {backend} peer", lambda: run_peer(
            backend, python, models=list(options.peer_models), sizes=[size0], batch_size=batch0,
            steps=1 if options.quick else 2, windows=options.windows, timeout=900), log)
        result["ratios"] = peer_ratios([r for r in result["models"] if "train" in r],
                                       {k.removeprefix("keras_"): v for k, v in peers.items()})
        save()


def pipeline_targets(result: dict) -> dict:
    """Issue 14: at each size, the pipeline streams >= 10x the fastest model's training images/s, and >= 2,000
    images/s at 128 px."""
    by_size = result.get("pipeline", {}).get("by_size", {})
    checks = {}
    for size, figures in by_size.items():
        fastest = max((r["train"]["images_per_s"] for r in result.get("models", [])
                       if "train" in r and str(r["image_size"]) == size), default=None)
        rate = figures.get("images_per_s")
        checks[f"pipeline_vs_fastest_model_{size}px >= 10"] = rate / fastest if rate and fastest else None
    if "128" in by_size:
        checks["pipeline_128px_images_per_s >= 2000"] = by_size["128"].get("images_per_s")
    return checks


def targets(result: dict) -> dict:
    """Issue 7's CPU targets, each with the measured value and whether it was met (None: not measured)."""
    def row(model, size=64):
        return next((r for r in result.get("models", []) if r["model"] == model and r["image_size"] == size
                     and "train" in r), None)

    rn = row("resnet50v2")
    ratios = result.get("ratios", {})
    checks = {
        "resnet50v2_64px_vs_keras_jax >= 1.5": ratios.get("resnet50v2_train_vs_keras_jax"),
        "resnet50v2_64px_vs_keras_tensorflow >= 2.5": ratios.get("resnet50v2_train_vs_keras_tensorflow"),
        "resnet50v2_train_fraction_of_peak >= 0.25": rn and rn.get("train_fraction_of_peak"),
        **pipeline_targets(result),
        "shap_time_over_forward_time <= 1.25": result.get("shap", {}).get("ratio"),
        "ray_overhead_per_trial_s <= 3": result.get("ray", {}).get("overhead_per_trial_s"),
        "ray_overhead_per_trial_excluding_init_s <= 2": result.get("ray", {}).get("overhead_per_trial_excluding_init_s"),
    }
    out = {}
    for key, value in checks.items():
        limit = float(key.split()[-1])
        met = None if value is None else (value >= limit if ">=" in key else value <= limit)
        out[key] = {"value": value, "met": met}
    return out
