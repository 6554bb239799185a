"""Ray overhead: K identical tiny trials through Ray Tune vs the same K run one after another without Ray."""
from __future__ import annotations

import contextlib
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import ray
from ray import tune


def tiny_trial(config: dict) -> dict:
    """A tiny, fixed amount of real work: a few jitted SGD steps of a small MLP on random data."""
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
    for _ in range(int(config.get("steps", 50))):
        w, loss = step(w)
    return {"loss": float(loss)}


def _ray_trainable(config: dict) -> None:
    tune.report(tiny_trial(config))


def ray_overhead(trials: int, *, steps: int = 50) -> dict:
    """Seconds of Ray overhead per trial (Ray start-up included), trials run one at a time in both cases."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    start = time.perf_counter()
    for seed in range(trials):
        tiny_trial({"seed": seed, "steps": steps})
    sequential = time.perf_counter() - start

    started_here = not ray.is_initialized()
    start = time.perf_counter()
    if started_here:
        # address="local": always a fresh private instance, never a cluster another process left running
        ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    init_s = time.perf_counter() - start
    try:
        with tempfile.TemporaryDirectory(prefix="fusion-sweep-bench-ray-") as storage:
            tuner = tune.Tuner(
                tune.with_resources(_ray_trainable, {"cpu": 1}),
                param_space={"seed": tune.grid_search(list(range(trials))), "steps": steps},
                tune_config=tune.TuneConfig(max_concurrent_trials=1),
                run_config=tune.RunConfig(storage_path=storage, name="bench-ray-overhead", verbose=0),
            )
            with contextlib.redirect_stdout(sys.stderr):  # Tune's tables are progress, not results
                results = tuner.fit()
            errors = len(results.errors)
    finally:
        if started_here:
            ray.shutdown()
    with_ray = time.perf_counter() - start
    return {"trials": trials, "steps_per_trial": steps, "sequential_s": sequential, "ray_s": with_ray,
            "ray_init_s": init_s, "errors": errors, "concurrency": 1,
            "overhead_per_trial_s": (with_ray - sequential) / trials,
            "overhead_per_trial_excluding_init_s": (with_ray - init_s - sequential) / trials}
