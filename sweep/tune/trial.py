"""Inside one Ray trial: claim and pin cores before JAX starts, train with train_and_evaluate, report to Tune.

Ray receives the trial's checkpoint only when the engine writes one: every `checkpoint_every` epochs, at the epochs a
scheduler may pause the trial (`checkpoint_epochs`), and at the end. The engine keeps one checkpoint in the run folder
(the latest epoch's state, with the best epoch's weights when those are selected), so what Ray copies is that one.
The last epoch is reported together with the test metrics: a scheduler that stops the trial at its last epoch
(ASHA at max_t) then stops a trial that has already scored its weights.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune

from sweep.configs.io import config_from_dict, config_to_dict
from sweep.configs.naming import config_label
from sweep.runtime import enable_compilation_cache, pin_cores
from sweep.tune.space import train_config_for
from sweep.tune.watch import RowWatch

CORE_LOCK_DIR = Path(os.environ.get("FUSION_SWEEP_CORE_LOCKS") or Path("/tmp") / f"fusion-sweep-cores-{os.getuid()}")
_held_core_locks: list[int] = []  # file descriptors; the kernel drops the locks when the trial process dies


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
    """Before JAX starts in this worker: pin cores, cap GPU memory when GPUs are shared, share the compile cache."""
    cores = claim_cores(max(1, math.ceil(cpus))) if gpus == 0 else sorted(os.sched_getaffinity(0))
    if 0 < gpus < 1:
        os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 * gpus:.2f}")
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    enable_compilation_cache(compile_cache)
    return cores


def run_trial(config: dict[str, Any]) -> None:
    """The Ray Tune function trainable: train one trial, report every epoch with its checkpoint, then the test metrics."""
    _setup_trial_process(config["cpus"], config["gpus"], config.get("compile_cache"))
    from sweep.engine.train import train_and_evaluate  # JAX starts here: after the cores are pinned

    trial = config["trial"]
    trial_id = tune.get_context().get_trial_id()
    base = config_from_dict(config["base"])
    train_config = train_config_for(trial, base)
    out_dir = Path(config["results_dir"]) / "trials" / trial_id
    checkpoint_dir = out_dir / "checkpoints"
    resumed_from = adopt_ray_checkpoint(tune.get_checkpoint(), checkpoint_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    watch = RowWatch(trial_id, trial_id, f"{config_label(trial)} seed {trial['seed']}", train_config.epochs, out_dir)

    def on_epoch(epoch: int, metrics: dict) -> None:
        watch.epoch(epoch, metrics)
        if metrics.get("final_epoch"):
            return  # reported with the test metrics, below
        report = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
        report.update(epoch=int(epoch), final=False, node_id=ray_node_id(), resumed_from_epoch=resumed_from)
        tune.report(report, checkpoint=ray_checkpoint(checkpoint_dir) if metrics.get("checkpointed") else None)

    finished = finished_metrics(out_dir, train_config)
    if finished is not None:  # Ray restarted a trial whose run had already finished (e.g. after a driver crash)
        metrics, status = finished, finished.get("status", "completed")
    else:
        result = train_and_evaluate(train_config, out_dir=out_dir, checkpoint_dir=checkpoint_dir, on_epoch=on_epoch,
                                    checkpoint_at=checkpoint_schedule(config), on_step=watch.step)
        metrics, status = result.metrics, result.status
    final = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
    final.update(final=True, train_status=status, wall_seconds=time.time() - start, node_id=ray_node_id(),
                 classes=",".join(metrics.get("classes", []) or []), epoch=int(metrics.get("epochs_run") or 0),
                 resumed_from_epoch=resumed_from)
    watch.finish(final)
    tune.report(final, checkpoint=ray_checkpoint(checkpoint_dir) if saved_epoch(checkpoint_dir) else None)


def checkpoint_schedule(config: dict):
    """The epochs after which the engine writes a checkpoint (and Ray receives it), besides the last one."""
    every = max(1, int(config.get("checkpoint_every") or 1))
    pauses = set(config.get("checkpoint_epochs") or ())
    return lambda epoch: epoch % every == 0 or epoch in pauses


def saved_epoch(checkpoint_dir: Path) -> int | None:
    """The epoch of the checkpoint in a run's checkpoints folder (Orbax names each by its epoch), else None."""
    epochs = [int(p.name) for p in checkpoint_dir.iterdir() if p.name.isdigit()] if checkpoint_dir.is_dir() else []
    return max(epochs, default=None)


def ray_checkpoint(checkpoint_dir: Path):
    """The run's one checkpoint (and its config.json) for Ray to copy into its storage path."""
    return tune.Checkpoint.from_directory(str(checkpoint_dir))


def adopt_ray_checkpoint(restored, checkpoint_dir: Path) -> int:
    """Before a restarted trial trains: take Ray's checkpoint when it is newer than the one in this node's run
    folder (a restart on another node whose --out is not shared, or after this folder was lost). Returns the
    epoch training continues after (0: from scratch)."""
    local = saved_epoch(checkpoint_dir)
    if restored is None:
        return local or 0
    with restored.as_directory() as folder:
        theirs = saved_epoch(Path(folder))
        if theirs is not None and (local is None or theirs > local):
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
            shutil.copytree(folder, checkpoint_dir)
            local = theirs
    return local or 0


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
