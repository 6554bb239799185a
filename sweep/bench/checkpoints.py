"""Checkpoint traffic of a sweep: the bytes each trial's process writes per epoch (its own checkpoints and Ray's
copies of them), for the three seed models, through the sweep's own Tuner, trial and checkpoint settings.

Each trial runs the sweep's trial function unchanged inside a wrapper that reads the process's write counter
(Linux /proc/self/io `wchar`: bytes passed to write calls, every thread included) before and after. Everything else
a trial writes (metrics, history, Ray's result messages) is kilobytes; checkpoints are megabytes. The persistent
JAX compile cache is off in these trials, so compiled programs are not counted. The unit a checkpoint is measured
in is the trial's state: weights (params and BatchNorm statistics) plus the optimiser's state.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

EPOCHS = 6
NUM_IMAGES = 96  # synthetic; 67 train images = 5 steps of 16 per epoch: the traffic, not the training, is measured
IO_FOLDER = "bench-io"


def written_bytes() -> int:
    """Bytes this process has passed to write calls so far (/proc/self/io `wchar`, all threads)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no wchar line; the checkpoints section needs Linux")


def measured_trial(config: dict) -> None:
    """The sweep's trial function, with the bytes its process wrote saved as bench-io/<trial id>.json."""
    from ray import tune

    from sweep.files import write_json_atomic
    from sweep.tune.trial import run_trial

    before = written_bytes()
    run_trial(config)
    written = written_bytes() - before
    trial_id = tune.get_context().get_trial_id()
    write_json_atomic(Path(config["results_dir"]) / IO_FOLDER / f"{trial_id}.json",
                      {"model": config["trial"]["model"], "bytes": written})


def state_bytes(train_config, num_classes: int, image_size: int) -> dict:
    """Bytes of a trial's weights (params + BatchNorm statistics) and of its optimiser state, from the arrays."""
    import jax

    from sweep.engine.steps import init_state, make_optimizer, split_model
    from sweep.engine.model_init import init_model

    model = init_model(train_config, num_classes, image_size)
    _, params, rest = split_model(model, train=True)
    state = init_state(params, rest, make_optimizer(train_config.optim, 1, 1))
    size = lambda tree: int(sum(x.nbytes for x in jax.tree.leaves(tree)))  # noqa: E731
    weights, optimiser = size((state.params, state.rest)), size(state.opt_state)
    return {"weights_bytes": weights, "optimizer_bytes": optimiser, "state_bytes": weights + optimiser}


def _sweep(image_size: int, epochs: int):
    from data.spec import DataSpec
    from sweep.configs.schema import SweepConfig, TrainConfig

    train = TrainConfig(data=DataSpec(source="synthetic", image_size=image_size, num_images=NUM_IMAGES),
                        batch_size=16, epochs=epochs, early_stopping=None, bn_momentum=0.9)
    return SweepConfig(name="bench-checkpoints", train=train, max_concurrent=1)


def checkpoint_traffic(image_size: int = 64, *, epochs: int = EPOCHS, models: tuple[str, ...] | None = None) -> dict:
    """Per seed model: bytes its trial wrote per epoch and per checkpoint taken, and those in units of its state
    (weights + optimiser state). No scheduler: checkpoints every sweep.checkpoint_every epochs and at the end."""
    import ray

    from data.builder import cache_root, prepare, user_cache_dir
    from sweep.configs.io import config_to_dict
    from sweep.configs.naming import SEED_FUSION
    from sweep.runtime import REPO_ROOT
    from sweep.tune import driver
    from sweep.tune.space import parent_configs, train_config_for

    sweep = _sweep(image_size, epochs)
    spec = sweep.train.data.replace(cache_dir=str(cache_root(sweep.train.data).resolve()))
    sweep = sweep.replace(train=sweep.train.replace(data=spec))
    prepared = prepare(spec)
    trials = [dict(c, seeds=[0]) for c in (*parent_configs(), dict(SEED_FUSION))
              if models is None or c["model"] in models]
    env = {"FUSION_SWEEP_CACHE": str(user_cache_dir().resolve()), "PYTHONPATH": str(REPO_ROOT),
           "JAX_ENABLE_COMPILATION_CACHE": "false"}
    started = driver.init_ray(None, num_cpus=1, env=env)
    try:
        with tempfile.TemporaryDirectory(prefix="fusion-sweep-bench-ckpt-") as out:
            tuner = driver.make_tuner(sweep, trials, results_dir=out, storage=None, compile_cache=None, callbacks=[],
                                      base_dict=config_to_dict(sweep.train), prepared_path=str(prepared.path),
                                      trainable=measured_trial)
            grid = tuner.fit()
            errors = [str(r.error).strip().splitlines()[-1] for r in grid if r.error]
            written = [json.loads(p.read_text()) for p in sorted((Path(out) / IO_FOLDER).glob("*.json"))]
    finally:
        if started:
            ray.shutdown()
    every = sweep.checkpoint_every
    taken = len({epoch for epoch in range(1, epochs + 1) if epoch % every == 0} | {epochs})
    rows = []
    for trial in trials:
        measured = next((w for w in written if w["model"] == trial["model"]), None)
        unit = state_bytes(train_config_for(trial, sweep.train), len(prepared.classes), image_size)
        row = {"model": trial["model"], **unit}
        if measured is not None:
            row.update(bytes_written=measured["bytes"], bytes_per_epoch=measured["bytes"] / epochs,
                       states_per_epoch=measured["bytes"] / epochs / unit["state_bytes"],
                       states_per_checkpoint=measured["bytes"] / taken / unit["state_bytes"])
        rows.append(row)
    return {"image_size": image_size, "epochs": epochs, "checkpoint_every": every, "checkpoints_per_trial": taken,
            "measure": "/proc/self/io wchar of each trial's process; a state is weights + optimiser state",
            "errors": errors, "models": rows}
