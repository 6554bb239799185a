"""Inside one Ray trial: one configuration trained for all its seeds (sweep.engine.train.train_seeds), reported to Tune.

Each seed is its own trials.csv row (`<ray trial id>-s<seed>`) with its own run folder RESULTS/trials/<row id>/.
After every epoch but the last the trial reports the seeds' validation accuracy, averaged, to Tune (what
ASHA/HyperBand compare); at the end, every seed's metrics, with its result files (per-image predictions included) and
its checkpoint as the final checkpoint, so the driver can collect them without sharing the results folder. The last
epoch is reported together with the test metrics: a scheduler that stops a trial at its last epoch (ASHA at max_t)
then stops a trial that has already scored its weights.

Ray receives the seeds' checkpoints only when the engine writes them: every `checkpoint_every` epochs, at the epochs
where a scheduler may stop or pause the trial (`checkpoint_epochs`), and at the end. Each seed keeps ONE checkpoint in
its run folder (its latest epoch's state, with the best epoch's weights when those are selected), so what Ray copies
is that one per seed.

Worker processes are reused between trials (the sweep's Tuner sets reuse_actors): the first trial of a process pins
its cores and starts JAX, later ones find JAX warm and the dataset open; each trial starts from a clean slate
(JAX's in-memory caches cleared, garbage collected).
"""
from __future__ import annotations

import fcntl
import gc
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune

from data.builder import open_prepared
from sweep.configs.io import config_from_dict, config_to_dict
from sweep.configs.naming import config_label
from sweep.runtime import enable_compilation_cache, pin_cores, use_cpu_compile_flags
from sweep.tune.handover import CHECKPOINTS, saved_epoch, staged, take_back
from sweep.tune.rows import row_id, seeds_label
from sweep.tune.space import train_config_for
from sweep.tune.watch import TrialWatch

CORE_LOCK_DIR = Path(os.environ.get("FUSION_SWEEP_CORE_LOCKS") or Path("/tmp") / f"fusion-sweep-cores-{os.getuid()}")
_held_core_locks: list[int] = []  # file descriptors; the kernel drops the locks when the trial process dies
_process: dict[str, Any] = {"trials": 0, "cores": None, "prepared": {}}  # what a reused worker process keeps


def claim_cores(count: int) -> list[int]:
    """Claim `count` cores of this node for this process with per-core flock files (released when the process
    exits, even on a crash) and pin to them. Ray reserves CPU counts but not which cores, and JAX on CPU uses
    every core it can see, so without this concurrent trials would fight over all cores."""
    allowed = sorted(os.sched_getaffinity(0))
    if count >= len(allowed):
        return allowed
    CORE_LOCK_DIR.mkdir(parents=True, exist_ok=True)
    claimed = []
    for core in allowed:
        fd = os.open(CORE_LOCK_DIR / f"core{core}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _held_core_locks.append(fd)
        claimed.append(core)
        if len(claimed) == count:
            break
    if len(claimed) < count:  # more trials than cores (fractional CPUs): share the least-claimed ones
        claimed += [c for c in allowed if c not in claimed][: count - len(claimed)]
    return pin_cores(cores=claimed)


def _setup_trial_process(cpus: float, gpus: float, compile_cache: str | None) -> list[int]:
    """Before JAX starts in this worker: pin cores, cap GPU memory when GPUs are shared, share the compile cache.
    A reused worker keeps its cores (same resources by Ray's rule for reuse) and starts the trial afresh."""
    if _process["cores"] is not None:
        _clean_slate()
        return _process["cores"]
    cores = claim_cores(max(1, math.ceil(cpus))) if gpus == 0 else sorted(os.sched_getaffinity(0))
    if gpus == 0:
        use_cpu_compile_flags()  # a worker on another node did not inherit the driver's environment
    if 0 < gpus < 1:
        os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 * gpus:.2f}")
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    enable_compilation_cache(compile_cache)
    _process["cores"] = cores
    return cores


def _clean_slate() -> None:
    """Between two trials in one worker: nothing of the last trial's programs or arrays stays in memory (the
    persistent compilation cache on disk stays: an identical program is loaded, not compiled)."""
    import jax

    jax.clear_caches()
    gc.collect()


def open_dataset(path: str | None, spec):
    """The dataset the driver prepared, opened once per worker process; prepared here only where this node does not
    see the driver's folder (another node without a shared cache) or it holds another spec."""
    key = (path, repr(spec))
    if key not in _process["prepared"]:
        from data.builder import prepare

        _process["prepared"][key] = open_prepared(path, spec) or prepare(spec)
    return _process["prepared"][key]


def evaluation_splits(config: dict[str, Any], data, prepared):
    """What each seed's selected weights are scored on: the test split and the sweep's external ('ext:NAME') and
    counterfactual ('cf:NAME') sets, opened once per worker process (None: the test split alone)."""
    paths = config.get("eval_sets") or {}
    if not paths:
        return None
    key = ("eval-sets", repr(sorted(paths.items())))
    if key not in _process["prepared"]:
        from data.spec import ExternalSpec
        from sweep.configs.io import from_dict
        from sweep.tune.eval_sets import open_eval_sets

        externals = {name: from_dict(ExternalSpec, spec) for name, spec in (config.get("externals") or {}).items()}
        _process["prepared"][key] = open_eval_sets(paths, externals, data, prepared)
    sets = _process["prepared"][key]
    return lambda dataset: {"test": dataset.split("test"), **sets}


def resolve_seed_mode(mode: str) -> str:
    """'auto': seeds vectorised on accelerators, one after another on CPU (where vmapped convolutions measured
    slower than running the compiled step once per seed: README, 'Seeds in one program')."""
    if mode != "auto":
        return mode
    import jax

    return "vmap" if jax.default_backend() in ("gpu", "tpu") else "sequential"


def run_trial(config: dict[str, Any]) -> None:
    """The Ray Tune function trainable: train one configuration for its seeds, report each epoch, then the rows."""
    _setup_trial_process(config["cpus"], config["gpus"], config.get("compile_cache"))
    from sweep.engine.train import train_seeds  # JAX starts here: after the cores are pinned

    _process["trials"] += 1
    trial, ray_id = config["trial"], tune.get_context().get_trial_id()
    base = config_from_dict(config["base"])
    train_config = train_config_for(trial, base)
    seeds = [int(s) for s in trial["seeds"]]
    run_dirs = {seed: Path(config["results_dir"]) / "trials" / row_id(ray_id, seed) for seed in seeds}
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            take_back(Path(folder), run_dirs)
    resumed_from = min(saved_epoch(run_dir / CHECKPOINTS) or 0 for run_dir in run_dirs.values())
    start = time.time()
    watch = TrialWatch(ray_id, f"{config_label(trial)} {seeds_label(trial)}", train_config.epochs, run_dirs)

    def on_epoch(epoch: int, summaries: dict[int, dict]) -> None:
        watch.epoch(epoch, summaries, report_epoch(epoch, summaries, run_dirs, ray_id, resumed_from))

    finished = finished_seeds(run_dirs, train_config)
    if finished is None:
        prepared = open_dataset(config.get("prepared_path"), train_config.data)
        results = train_seeds(train_config, seeds, out_dirs=[run_dirs[s] for s in seeds],
                              mode=resolve_seed_mode(config.get("seed_mode", "auto")), prepared=prepared,
                              eval_splits=evaluation_splits(config, train_config.data, prepared),
                              on_epoch=on_epoch, on_step=watch.step, checkpoint_at=checkpoint_schedule(config))
        finished = {seed: (result.metrics, result.status) for seed, result in zip(seeds, results)}
    watch.finish(finished)
    report_final(finished, run_dirs, ray_id, wall_seconds=time.time() - start, resumed_from=resumed_from)


def checkpoint_schedule(config: dict):
    """The epochs after which the engine writes a checkpoint (and Ray receives it), besides each seed's last."""
    every = max(1, int(config.get("checkpoint_every") or 1))
    pauses = set(config.get("checkpoint_epochs") or ())
    return lambda epoch: epoch % every == 0 or epoch in pauses


def group_val_accuracy(summaries: dict[int, dict]) -> float:
    """What ASHA/HyperBand compare: the mean over the seeds that did not diverge of the validation accuracy of the
    weights each would be scored with if the trial ended now (config.weights' choice); 0 when every seed diverged."""
    selected = [s["selected_val_accuracy"] for s in summaries.values()
                if s["train_status"] != "diverged" and s.get("selected_val_accuracy") is not None]
    return sum(selected) / len(selected) if selected else 0.0


def report_epoch(epoch: int, summaries: dict[int, dict], run_dirs: dict[int, Path], ray_id: str,
                 resumed_from: int = 0) -> float:
    """One epoch of the group to Tune (unless it is the group's last: report_final carries that one), with every
    seed's checkpoint when this epoch wrote them; the group's val_accuracy."""
    val_accuracy = group_val_accuracy(summaries)
    training = sum(s["train_status"] == "training" for s in summaries.values())
    if not training:
        return val_accuracy
    seeds = {str(seed): {**_scalars(summary), "trial_id": row_id(ray_id, seed)} for seed, summary in summaries.items()}
    report = {"epoch": int(epoch), "final": False, "node_id": ray_node_id(), "seeds": seeds,
              "val_accuracy": val_accuracy, "seeds_training": training, "resumed_from_epoch": resumed_from,
              "checkpointed": any(s.get("checkpointed") for s in summaries.values())}
    if not report["checkpointed"]:
        tune.report(report)
        return val_accuracy
    with staged(run_dirs, final=False) as folder:
        tune.report(report, checkpoint=tune.Checkpoint.from_directory(str(folder)))
    return val_accuracy


def report_final(finished: dict[int, tuple[dict, str]], run_dirs: dict[int, Path], ray_id: str,
                 wall_seconds: float, resumed_from: int = 0) -> None:
    """Every seed's final metrics (one trials.csv row each) to Tune, their result files as the last checkpoint;
    top-level means over the seeds with test metrics, for Tune's own tables and the driver's progress lines."""
    seeds = {}
    for seed, (metrics, status) in finished.items():
        seeds[str(seed)] = {**_scalars(metrics), "train_status": status, "trial_id": row_id(ray_id, seed),
                            "classes": ",".join(metrics.get("classes", []) or [])}
    scored = [s for s in seeds.values() if isinstance(s.get("test_accuracy"), float)]
    final = {"final": True, "seeds": seeds, "node_id": ray_node_id(), "wall_seconds": wall_seconds,
             "resumed_from_epoch": resumed_from,
             "epoch": max(int(s.get("epochs_run") or 0) for s in seeds.values())}
    for key in ("test_accuracy", "val_accuracy", "params", "flops"):
        values = [s[key] for s in scored if isinstance(s.get(key), (int, float))]
        final[key] = sum(values) / len(values) if values else float("nan")
    with staged(run_dirs, final=True) as folder:
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(str(folder)))


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}


def finished_seeds(run_dirs: dict[int, Path], train_config) -> dict[int, tuple[dict, str]] | None:
    """Every seed's (metrics, status) when each run folder holds a finished run of exactly its config (Ray restarted
    a trial that had already finished, e.g. after a driver crash), else None."""
    finished = {}
    for seed, run_dir in run_dirs.items():
        metrics = finished_metrics(run_dir, train_config.replace(seed=seed))
        if metrics is None:
            return None
        finished[seed] = (metrics, metrics.get("status", "completed"))
    return finished


def finished_metrics(out_dir: Path, train_config) -> dict | None:
    """The metrics of a finished run of exactly this config in out_dir, else None."""
    metrics_file, config_file = out_dir / "metrics.json", out_dir / "config.json"
    if not (metrics_file.is_file() and config_file.is_file()):
        return None
    try:
        if json.loads(config_file.read_text()) != json.loads(json.dumps(config_to_dict(train_config))):
            return None
        return json.loads(metrics_file.read_text())
    except (OSError, ValueError):
        return None


def ray_node_id() -> str:
    return ray.get_runtime_context().get_node_id()
