"""Ray overhead: K identical tiny trials through Ray Tune, set up as a sweep sets up its trials, against the same K run
one after another without Ray.

Each tiny trial does a fixed amount of JAX work split into epochs and talks to Tune as a sweep's trial does: one
report per epoch with a small checkpoint, then a final report. The sweep's setting (worker processes reused from one
trial to the next: sweep.tune.driver.REUSE_ACTORS) gives the section's headline figures; the same trials with a
fresh worker process each are measured in the same run (`fresh_process`), for the difference that setting makes.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import ray
from ray import tune

EPOCHS = 3


def tiny_trial(config: dict, report=None) -> dict:
    """A tiny, fixed amount of real work (jitted SGD steps of a small MLP, compiled once per trial) in epochs;
    `report(metrics, checkpoint_folder)` after each epoch (None: no Ray)."""
    key = jax.random.key(int(config.get("seed", 0)))
    kx, kw = jax.random.split(key)
    x = jax.random.normal(kx, (256, 64))
    y = (x[:, 0] > 0).astype(jnp.float32)
    w = jax.random.normal(kw, (64,)) * 0.01

    @jax.jit
    def step(w):
        loss, grad = jax.value_and_grad(lambda w: jnp.mean((jax.nn.sigmoid(x @ w) - y) ** 2))(w)
        return w - 0.5 * grad, loss

    loss = None
    for epoch in range(1, EPOCHS + 1):
        for _ in range(int(config.get("steps", 60)) // EPOCHS):
            w, loss = step(w)
        loss = float(loss)
        if report is not None:
            with tempfile.TemporaryDirectory(prefix="fusion-sweep-bench-ckpt-") as folder:
                with open(os.path.join(folder, "weights.bin"), "wb") as f:
                    f.write(bytes(jax.device_get(w).tobytes()))
                report({"epoch": epoch, "loss": loss, "final": False}, folder)
    return {"loss": loss}


def _ray_trainable(config: dict) -> None:
    result = tiny_trial(config, lambda metrics, folder: tune.report(
        metrics, checkpoint=tune.Checkpoint.from_directory(folder)))
    tune.report({**result, "final": True})


def _through_ray(trials: int, steps: int, reuse_actors: bool) -> dict:
    """Seconds to start a private local Ray and run the trials through a Tuner, one at a time."""
    start = time.perf_counter()
    # address="local": always a fresh private instance, never a cluster another process left running
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    init_s = time.perf_counter() - start
    try:
        with tempfile.TemporaryDirectory(prefix="fusion-sweep-bench-ray-") as storage:
            tuner = tune.Tuner(
                tune.with_resources(_ray_trainable, {"cpu": 1}),
                param_space={"seed": tune.grid_search(list(range(trials))), "steps": steps},
                tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=reuse_actors),
                run_config=tune.RunConfig(storage_path=storage, name="bench-ray-overhead", verbose=0,
                                          checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
            )
            with contextlib.redirect_stdout(sys.stderr):  # Tune's tables are progress, not results
                results = tuner.fit()
            errors = len(results.errors)
    finally:
        ray.shutdown()
    return {"ray_s": time.perf_counter() - start, "ray_init_s": init_s, "errors": errors}


def _overheads(run: dict, sequential: float, trials: int) -> dict:
    return {**run, "overhead_per_trial_s": (run["ray_s"] - sequential) / trials,
            "overhead_per_trial_excluding_init_s": (run["ray_s"] - run["ray_init_s"] - sequential) / trials}


def ray_overhead(trials: int, *, steps: int = 60) -> dict:
    """Seconds of Ray overhead per trial (Ray start-up included, and excluded), trials run one at a time; the
    sweep's worker reuse for the headline, fresh worker processes for comparison."""
    from sweep.tune.driver import REUSE_ACTORS

    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if ray.is_initialized():
        raise RuntimeError("ray_overhead starts its own private Ray; call it with no Ray initialised")
    start = time.perf_counter()
    for seed in range(trials):
        tiny_trial({"seed": seed, "steps": steps})
    sequential = time.perf_counter() - start
    reused = _overheads(_through_ray(trials, steps, reuse_actors=REUSE_ACTORS), sequential, trials)
    fresh = _overheads(_through_ray(trials, steps, reuse_actors=False), sequential, trials)
    return {"trials": trials, "steps_per_trial": steps, "epochs_per_trial": EPOCHS, "sequential_s": sequential,
            "concurrency": 1, "reuse_actors": REUSE_ACTORS, **reused, "fresh_process": fresh,
            "note": "each trial reports every epoch with a small checkpoint, as a sweep's trial does; headline "
                    "figures use the sweep's worker reuse, fresh_process a new worker per trial"}
