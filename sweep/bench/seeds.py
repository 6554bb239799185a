"""Seeds in one program: K seeds of one configuration as one vmapped train step against the same compiled step run
once per seed (what a sweep trial does in 'sequential' mode), timed in interleaved windows in the same process."""
from __future__ import annotations

import time

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np

from data.spec import PipelineSpec
from models.registry import build_model
from models.spec import FusionSpec
from sweep.bench.timing import interleave, local_window, ratio_windows, summarize
from sweep.configs.schema import OptimConfig
from sweep.engine.steps import (init_state, make_optimizer, make_seeds_train_step, make_train_step, split_model,
                                stack_trees)

# the quick preset's fusion with both branches: what decides a CPU sweep's default seed mode
QUICK_FUSION = FusionSpec(cnn_cut="block2_drop", resnet_cut="conv2_block1_out", branch_width=16, head_width=2048)


def _states(spec: FusionSpec, k: int, tx):
    states, graphdef = [], None
    for seed in range(k):
        model = build_model(spec, num_classes=spec.num_classes, image_size=spec.image_size, channels=spec.channels,
                            rngs=nnx.Rngs(params=seed, dropout=seed + 1), bn_momentum=0.9)
        graphdef, params, rest = split_model(model, train=True)
        states.append(init_state(params, rest, tx))
    return graphdef, states


def _batches(k: int, batch_size: int, image_size: int, channels: int = 1) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"image": jnp.asarray(rng.random((batch_size, image_size, image_size, channels), np.float32)),
             "label": jnp.asarray(rng.integers(0, 2, batch_size), jnp.int32),
             "valid": jnp.ones((batch_size,), bool)} for _ in range(k)]


def _compile_s(call) -> float:
    start = time.perf_counter()
    jax.block_until_ready(call())
    return time.perf_counter() - start


def seeds_speed(*, spec: FusionSpec = QUICK_FUSION, image_size: int = 32, batch_size: int = 16, seeds: int = 4,
                windows: int = 5, window_s: float = 2.0) -> dict:
    """Images/s of `seeds` seeds trained as one vmapped step vs one after another by the same compiled step, in
    alternating windows (each window: the same number of K-seed steps); `seeds_vmap_over_sequential` > 1 means
    vectorising pays on this device."""
    spec = spec.replace(image_size=image_size, channels=1)
    pipeline = PipelineSpec(channels=1)
    tx = make_optimizer(OptimConfig(learning_rate=1e-3), steps_per_epoch=100, epochs=1)
    graphdef, states = _states(spec, seeds, tx)
    batches = _batches(seeds, batch_size, image_size)
    single = make_train_step(graphdef, tx, pipeline)
    vmapped = make_seeds_train_step(graphdef, tx, pipeline)
    stacked, stacked_batch = stack_trees(states), {k: jnp.stack([b[k] for b in batches]) for k in batches[0]}
    active = jnp.ones((seeds,), bool)
    box = {"one": list(states), "all": stacked}

    def run_sequential(steps: int) -> None:
        for _ in range(steps):
            box["one"] = [single(state, batch)[0] for state, batch in zip(box["one"], batches)]
        jax.block_until_ready(box["one"])

    def run_vmap(steps: int) -> None:
        for _ in range(steps):
            box["all"] = vmapped(box["all"], stacked_batch, active)[0]
        jax.block_until_ready(box["all"])

    sequential_compile = _compile_s(lambda: run_sequential(1))
    vmap_compile = _compile_s(lambda: run_vmap(1))
    start = time.perf_counter()
    run_sequential(1)
    steps = int(min(50, max(1, round(window_s / max(time.perf_counter() - start, 1e-6)))))
    # interleaved windows: load changes on a shared machine hit both alike
    samples = interleave({"sequential": local_window(run_sequential, steps), "vmap": local_window(run_vmap, steps)},
                         windows)
    sequential = summarize(samples["sequential"], seeds * batch_size)
    vmap = summarize(samples["vmap"], seeds * batch_size)
    return {"config": f"fusion {spec.cnn_cut}+{spec.resnet_cut} b{spec.branch_width} h{spec.head_width}",
            "image_size": image_size, "batch_size": batch_size, "seeds": seeds, "steps_per_window": steps,
            "sequential_compile_s": sequential_compile, "vmap_compile_s": vmap_compile,
            "sequential_images_per_s": sequential["images_per_s"], "vmap_images_per_s": vmap["images_per_s"],
            "sequential": sequential, "vmap": vmap,
            "seeds_vmap_over_sequential": vmap["images_per_s"] / sequential["images_per_s"],
            # the same speed-up window by window (sequential seconds / vmapped seconds), with its spread
            "seeds_vmap_over_sequential_windows": ratio_windows(samples["sequential"], samples["vmap"]),
            "note": "images/s over all seeds; each window runs the same number of K-seed steps in each mode"}
