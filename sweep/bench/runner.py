"""One benchmark run: peak, every model's steps (with the Keras peers interleaved), conv layers, compile cache,
pipeline, SHAP, Ray, seeds."""
from __future__ import annotations

import dataclasses
import datetime
import os
import re
import time
import traceback
from typing import Callable

import jax

from models.registry import MODEL_NAMES
from sweep import runtime
from sweep.bench import peak, report, steps

DEVICES = ("cpu", "gpu")
PEERS = ("keras",)


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
    conv_window_s: float = 0.5  # one conv layer's windows (conv_layers section)
    peer: str | None = None
    peer_python: str | None = None
    peer_models: tuple[str, ...] = MODEL_NAMES
    compile_model: str = "resnet50v2"
    ray_trials: int = 8
    seeds_k: int = 4  # section seeds: K seeds vectorised vs K sequential runs
    shap_images: int = 8  # the sweep's settings: >= 8 images, >= 200 evaluations each
    shap_max_evals: int = 200
    pipeline_seconds: float = 5.0
    pipeline_images: int = 2000  # synthetic images the pipeline section streams (prepared once per size)
    peak_n: int | None = None  # matmul size for the peak (default 2048 on CPU, 4096 on GPU)
    autotune_budget_s: float | None = None  # per model; None: $FUSION_SWEEP_AUTOTUNE or 60 s
    skip: tuple[str, ...] = ()  # any of SECTIONS ("steps": the per-model train/eval timings)

    @staticmethod
    def for_device(device: str, quick: bool, **overrides) -> "BenchOptions":
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        base: dict = {"device": device, "quick": quick}
        if device == "gpu":
            base.update(sizes=(256,), batch_sizes=(128, 32))
        if quick:
            base.update(sizes=base.get("sizes", (64,))[:1] if device == "gpu" else (64, 128),
                        batch_sizes=base.get("batch_sizes", (32,))[:1] if device == "gpu" else (32,),
                        windows=3, window_s=1.0, conv_window_s=0.25, pipeline_seconds=2.0, pipeline_images=500,
                        peer_models=("resnet50v2",), compile_model="cnn", skip=("flops", "checkpoints"))
        base.update({k: v for k, v in overrides.items() if v is not None})
        return BenchOptions(**base)


def run_section(name: str, fn: Callable[[], dict], log: Callable[[str], None]) -> dict:
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
    Order: peak, the models at the first image size (the Keras peers' windows interleaved with ours), the conv
    layers, the overheads, then the larger sizes (slowest last); `checkpoint(result)` is called after each
    section, so a run cut short still leaves what it measured."""
    _check(options)
    result: dict = {
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "complete": False, "options": dataclasses.asdict(options), "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load": {"before": [round(x, 2) for x in os.getloadavg()], "cores_note":
                 "1-minute load average above the usable core count means other processes shared the CPU"},
        "timing": "per figure: median of interleaved windows (candidates take turns), with min/max/quartiles",
        "hardware": report.hardware(), "versions": runtime.versions(), "models": [],
    }
    result["hardware"].update(jaxlib=result["versions"].get("jaxlib"), git_commit=runtime.git_commit())

    def save() -> None:
        result["targets"] = targets(result)
        result["load"]["after"] = [round(x, 2) for x in os.getloadavg()]
        if checkpoint is not None:
            checkpoint(result)

    gpu = options.device == "gpu"
    if gpu and jax.default_backend() != "gpu":
        raise RuntimeError(f"--device gpu asked for, but jax's backend is {jax.default_backend()!r}")
    result["peak"] = run_section("peak matmul", lambda: peak.matmul_peak(
        _precision(options), n=options.peak_n or (4096 if gpu else 2048)), log)
    # The best window: on a shared box the median peak drops with other processes' load, and a model measured in
    # a quieter moment would then appear to beat the machine.
    result["peak"]["fraction_basis"] = "best_flops_per_s"
    if result["peak"].get("best_flops_per_s"):
        result["hardware"]["matmul_peak_gflops"] = round(result["peak"]["best_flops_per_s"] / 1e9, 1)
    if not gpu and "autotune" not in options.skip:
        result["autotune"] = run_section("autotune", lambda: _autotune(options, log), log)
        save()
    _sizes_with_peers(options, result, save, log)
    _overheads(options, result, save, log)
    if options.peer is None:
        for size in options.sizes[1:] if "steps" not in options.skip else ():
            _measure_size(options, size, result, {}, save, log)
    result["train_fraction_of_peak"] = {f"{r['model']}_{r['image_size']}px_b{r['batch_size']}":
                                        r.get("train_fraction_of_peak") for r in result["models"] if "error" not in r}
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


def bench_programs(options: BenchOptions) -> list:
    """The autotune programs of the bench: every model at every size and batch size it times."""
    from sweep.bench.steps import build_bench_model
    from sweep.engine.autotune import Program

    return [Program(model=name, label=name, image_size=size, batch_size=batch, precision=_precision(options),
                    build=lambda name=name, size=size: build_bench_model(name, size, precision=_precision(options)))
            for name in options.models for size in options.sizes for batch in options.batch_sizes]


def _autotune(options: BenchOptions, log) -> dict:
    """This machine's table for the bench's programs (measured now only where missing), and what it chose."""
    from sweep.engine import autotune

    budget = autotune.env_budget() if options.autotune_budget_s is None else options.autotune_budget_s
    programs = bench_programs(options)
    table = autotune.ensure_table(programs, budget_s=budget, log=log) if budget > 0 else autotune.load_table()
    if table is None:
        return {"table": None, "note": "autotune off and no stored table: the built-in conv rules"}
    chosen = {p.key: {phase: {k: v for k, v in table["programs"][p.key][phase].items() if k != "seconds"}
                      for phase in autotune.PHASES} for p in programs if p.key in table["programs"]}
    return {"table": str(autotune.table_path(table["signature"])), "signature_id": table["signature_id"],
            "signature": table["signature"], "budget_s_per_model": budget, "programs": chosen,
            "layers": {phase: {k: e["form"] for k, e in table["layers"][phase].items()} for phase in autotune.PHASES}}


def _activate(options: BenchOptions, name: str, size: int, batch: int) -> None:
    """Hand the stored autotune choice for this program to models/ (CPU; the built-in rules without a table)."""
    if options.device == "gpu":
        return
    from sweep.engine import autotune

    autotune.activate_cached(autotune.program_key(name, size, batch, _precision(options)))


def _sizes_with_peers(options: BenchOptions, result: dict, save, log) -> None:
    """The models at the first size and (on CPU) the conv layers, the Keras peers (if asked for) serving their
    windows in turn with ours; with a peer, the larger sizes too (TensorFlow's alone: the ratios the targets
    read); the peers are closed whatever happens."""
    peers, skipped = {}, {}
    if options.peer == "keras":
        from sweep.bench import peer

        peers, skipped = peer.open_peers(options.peer_python, log)
    try:
        if "steps" not in options.skip:
            _measure_size(options, options.sizes[0], result, peers, save, log)
            tensorflow = {b: p for b, p in peers.items() if b == "tensorflow"}
            for size in options.sizes[1:] if options.peer == "keras" else ():
                _measure_size(options, size, result, tensorflow, save, log)
        if options.peer == "keras":
            _collect_peers(result, peers, skipped)
            save()
        if options.device != "gpu" and "conv_layers" not in options.skip:
            from sweep.bench.conv_layers import SEED_MODELS, time_conv_layers

            result["conv_layers"] = run_section("conv layers", lambda: time_conv_layers(
                SEED_MODELS, options.sizes[0], options.batch_sizes[0], windows=options.windows,
                window_s=options.conv_window_s, tf_peer=peers.get("tensorflow"), log=log), log)
            save()
    finally:
        for one in peers.values():
            one.close()


def _measure_size(options: BenchOptions, size: int, result: dict, peers: dict, save, log) -> None:
    """Every model at every batch size at this image size, each row saved as soon as it is measured; the peers
    (if any) time the models they cover at the first batch size."""
    peak_flops = result["peak"].get("best_flops_per_s") or result["peak"].get("flops_per_s")
    for batch in options.batch_sizes:
        for name in options.models:
            _activate(options, name, size, batch)
            mine = {b: p for b, p in peers.items() if name in options.peer_models and batch == options.batch_sizes[0]}
            row = run_section(f"{name} {size}px batch {batch}" + (f" with keras {', '.join(mine)}" if mine else ""),
                              lambda: steps.measure_model(
                                  name, image_size=size, batch_size=batch, window_s=options.window_s,
                                  windows=options.windows, precision=_precision(options),
                                  peak_flops_per_s=peak_flops, peers=mine), log)
            row.setdefault("model", name)
            row.setdefault("image_size", size)
            row.setdefault("batch_size", batch)
            row["load_after"] = [round(x, 2) for x in os.getloadavg()]
            result["models"].append(row)
            save()


def _collect_peers(result: dict, peers: dict, skipped: dict) -> None:
    """Move each row's peer figures into result["peers"] and its per-window ratios into result["ratios"]
    ('<model>_<phase>_vs_keras_<backend>_<size>px_b<batch>' for every row; '<model>_<phase>_vs_keras_<backend>',
    the headline, from the first size measured) and result["ratio_spread"] (all windows). A peer row that
    failed (e.g. another trainable-parameter count) is listed in result["peer_errors"]."""
    result["peers"] = dict(skipped)
    for backend, peer in peers.items():
        result["peers"][f"keras_{backend}"] = {"python": peer.python, **peer.hello, "results": []}
    ratios, spreads, errors = {}, {}, []
    for row in result["models"]:
        for backend, figures in row.pop("peers", {}).items():
            result["peers"][f"keras_{backend}"]["results"].append(figures)
            if "error" in figures:
                errors.append(f"{row['model']} {row['image_size']}px keras {backend}: {figures['error']}")
        for key, ratio in row.pop("peer_ratios", {}).items():
            name = f"{row['model']}_{key}"
            if name not in ratios:  # the headline: the first size (rows come in the order measured)
                ratios[name], spreads[name] = ratio["ratio"], ratio
            sized = f"{name}_{row['image_size']}px_b{row['batch_size']}"
            ratios[sized], spreads[sized] = ratio["ratio"], ratio
    result["ratios"], result["ratio_spread"] = ratios, spreads
    if errors:
        result["peer_errors"] = errors


def _overheads(options: BenchOptions, result: dict, save, log) -> None:
    """Compile cache, input pipeline, SHAP, Ray, seeds and the params-vs-FLOPs story, each unless skipped. Each
    section imports what it measures only when it runs: the GPU path keeps ray, shap, grain, cv2 and
    tensorflow_datasets out."""
    size0, batch0 = options.sizes[0], options.batch_sizes[0]
    gpu = options.device == "gpu"
    if "compile" not in options.skip:
        from sweep.bench.compile import compile_cache_check

        result["compile_cache"] = run_section("compile cache", lambda: compile_cache_check(
            options.compile_model, size0, batch0), log)
        save()
    if gpu:
        note = "skipped on the GPU path: it keeps ray, shap, grain, cv2 and tensorflow_datasets out of the process"
        result["shap"], result["ray"], result["pipeline"] = {"skipped": note}, {"skipped": note}, {"skipped": note}
        result["checkpoints"] = {"skipped": note}
    else:
        _cpu_overheads(options, result, save, log)
    if "seeds" not in options.skip:
        from sweep.bench.seeds import seeds_speed

        # CPU: the quick preset's size, which sets a CPU sweep's default; GPU: the bench's size and batch
        size, batch = (size0, batch0) if gpu else (32, 16)
        result["seeds"] = run_section(f"seeds: {options.seeds_k} vmapped vs sequential", lambda: seeds_speed(
            image_size=size, batch_size=batch, seeds=options.seeds_k, windows=options.windows,
            window_s=options.window_s), log)
        save()
    if "flops" not in options.skip:
        from sweep.bench.flops_story import seed_flops_vs_params

        result["flops_vs_params"] = run_section("params vs FLOPs at 256 px", lambda: seed_flops_vs_params(256), log)
        save()


def _cpu_overheads(options: BenchOptions, result: dict, save, log) -> None:
    """The sections that need the data pipeline, shap or Ray: input pipeline, SHAP's cost, Ray's overhead, the
    checkpoint traffic of sweep trials."""
    size0, batch0 = options.sizes[0], options.batch_sizes[0]
    if "pipeline" not in options.skip:
        from sweep.bench import pipeline

        result["pipeline"] = run_section("input pipeline", lambda: pipeline.pipeline_by_size(
            options.sizes, batch0, options.pipeline_seconds, options.pipeline_images), log)
        save()
    if "shap" not in options.skip:
        from sweep.bench.explain_cost import shap_cost

        _activate(options, "cnn", size0, batch0)
        result["shap"] = run_section("shap overhead", lambda: shap_cost(
            "cnn", size0, images=options.shap_images, max_evals=options.shap_max_evals,
            windows=options.windows), log)
        save()
    if "ray" not in options.skip:
        from sweep.bench.ray_overhead import ray_overhead

        result["ray"] = run_section("ray overhead", lambda: ray_overhead(options.ray_trials), log)
        save()
    if "checkpoints" not in options.skip:
        from sweep.bench.checkpoints import checkpoint_traffic

        result["checkpoints"] = run_section("checkpoint traffic of sweep trials", lambda: checkpoint_traffic(
            size0, models=options.models), log)
        save()


TARGETS = {  # issue 16: "<figure> <op> <limit>" -> where the figure lives in the result
    "shap.ratio <= 1.25": ("shap", "ratio"),
    "ray.overhead_per_trial_excluding_init_s <= 2.0": ("ray", "overhead_per_trial_excluding_init_s"),
    "ray.overhead_per_trial_s <= 3.0": ("ray", "overhead_per_trial_s"),
    "resnet50v2_train_vs_keras_tensorflow >= 1.2": ("ratios", "resnet50v2_train_vs_keras_tensorflow"),
    "resnet50v2_eval_vs_keras_tensorflow >= 1.2": ("ratios", "resnet50v2_eval_vs_keras_tensorflow"),
    "cnn_train_vs_keras_tensorflow >= 1.0": ("ratios", "cnn_train_vs_keras_tensorflow"),
    "cnn_eval_vs_keras_tensorflow >= 1.0": ("ratios", "cnn_eval_vs_keras_tensorflow"),
}
REQUIRED_SECTIONS = ("seeds", "conv_layers")  # issue 16: present in every run


def pipeline_targets(result: dict) -> dict:
    """Issue 14: at each size, the pipeline streams >= 10x the fastest seed model's training images/s, and >= 2,000
    images/s at 128 px (other backbones a bench measures are reported, not targets)."""
    by_size = result.get("pipeline", {}).get("by_size", {})
    checks = {}
    for size, figures in by_size.items():
        fastest = max((r["train"]["images_per_s"] for r in result.get("models", [])
                       if "train" in r and str(r["image_size"]) == size and r.get("model") in MODEL_NAMES),
                      default=None)
        rate = figures.get("images_per_s")
        checks[f"pipeline_vs_fastest_model_{size}px >= 10"] = rate / fastest if rate and fastest else None
    if "128" in by_size:
        checks["pipeline_128px_images_per_s >= 2000"] = by_size["128"].get("images_per_s")
    return checks


def size_targets(result: dict) -> dict:
    """Issue 23: every per-size ratio of cnn and resnet50v2 against Keras on TensorFlow >= 1.0, and ResNet50V2's
    train fraction of peak >= 0.40 at 128 px."""
    checks = {f"{key} >= 1.0": value for key, value in result.get("ratios", {}).items()
              if re.fullmatch(r"(cnn|resnet50v2)_(train|eval)_vs_keras_tensorflow_\d+px_b\d+", key)}
    for key, value in result.get("train_fraction_of_peak", {}).items():
        if key.startswith("resnet50v2_128px"):
            checks[f"{key}_train_fraction_of_peak >= 0.4"] = value
    return checks


def targets(result: dict) -> dict:
    """Issue 16's targets (and issue 14's pipeline and issue 23's per-size targets), each with the measured value
    and whether it was met (None: not measured), whether the sections issue 16 requires are present (without an
    error), and whether every peer model had our trainable-parameter count."""
    checks = {key: result.get(section, {}).get(field) for key, (section, field) in TARGETS.items()}
    checks.update(pipeline_targets(result))
    checks.update(size_targets(result))
    out = {}
    for key, value in checks.items():
        limit = float(key.split()[-1])
        met = None if value is None else (value >= limit if ">=" in key else value <= limit)
        out[key] = {"value": value, "met": met}
    for section in REQUIRED_SECTIONS:
        present = section in result and "error" not in result[section] and "skipped" not in result[section]
        out[f"{section} section present"] = {"value": present, "met": present}
    if "peers" in result:
        errors = result.get("peer_errors", [])
        out["peer models have our trainable params"] = {"value": errors or True, "met": not errors}
    return out
