"""Train/eval step throughput and achieved FLOP/s of the seed models, timed with the same steps training runs."""
from __future__ import annotations

import time

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np

from models.registry import MODEL_NAMES, build_model
from models.spec import FusionSpec
from sweep.bench.timing import summarize, time_windows
from sweep.engine.steps import step_kit


def build_bench_model(name: str, image_size: int, *, num_classes: int = 2, channels: int = 3, seed: int = 0,
                      precision: str = "float32"):
    """One of the seed's three models: cnn, resnet50v2 (Flatten/Dense(2048) head), fusion (FusionSpec()),
    computing in bfloat16 (params float32) when precision says so."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown bench model {name!r}; choose from: {', '.join(MODEL_NAMES)}")
    target = FusionSpec(num_classes=num_classes, image_size=image_size, channels=channels) if name == "fusion" else name
    return build_model(target, num_classes=num_classes, image_size=image_size, channels=channels,
                       resnet_head="flatten", rngs=nnx.Rngs(seed),
                       dtype=jnp.bfloat16 if precision == "bfloat16" else None)


def compiled_flops(compiled) -> float | None:
    """FLOPs of one call of a compiled XLA executable, by XLA's own cost analysis (None when unavailable)."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # some backends do not implement it
        return None
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops")
    return float(flops) if flops else None


def _steps_for(seconds_per_step: float, window_s: float) -> int:
    return int(min(50, max(1, round(window_s / max(seconds_per_step, 1e-6)))))


def measure_model(name: str, *, image_size: int, batch_size: int, window_s: float, windows: int,
                  precision: str = "float32", peak_flops_per_s: float | None = None, eval_too: bool = True) -> dict:
    """Compile and time the train step (and eval step) of one model; images/s, FLOP/s, fraction of peak.
    Each timed window runs as many steps as fill about `window_s` seconds (at least one)."""
    model = build_bench_model(name, image_size, precision=precision)
    kit = step_kit(model, batch_size=batch_size, image_size=image_size)
    del model
    out: dict = {"model": name, "image_size": image_size, "batch_size": batch_size, "precision": precision}

    start = time.perf_counter()
    lowered = kit.train_step.lower(kit.state, kit.batch)
    traced = time.perf_counter()
    train = lowered.compile()
    out["train_trace_s"] = traced - start
    out["train_compile_s"] = time.perf_counter() - traced
    flops = compiled_flops(train)
    state, _ = train(kit.state, kit.batch)  # warm-up (first call allocates)
    jax.block_until_ready(state)
    start = time.perf_counter()
    state, _ = train(state, kit.batch)
    jax.block_until_ready(state)
    steps = _steps_for(time.perf_counter() - start, window_s)

    def run_train(k: int) -> None:
        nonlocal state
        for _ in range(k):
            state, _ = train(state, kit.batch)
        jax.block_until_ready(state)

    out["train"] = summarize(time_windows(run_train, steps=steps, windows=windows), batch_size)
    out["train"]["steps_per_window"] = steps
    out["train_flops_per_step"] = flops
    if flops:
        achieved = flops / out["train"]["seconds_per_step"]
        out["train_flops_per_s"] = achieved
        if peak_flops_per_s:
            out["train_fraction_of_peak"] = achieved / peak_flops_per_s

    if eval_too:
        params, rest = state.params, state.rest
        start = time.perf_counter()
        evaluate = kit.eval_step.lower(params, rest, kit.batch).compile()
        out["eval_compile_s"] = time.perf_counter() - start
        eval_flops = compiled_flops(evaluate)
        jax.block_until_ready(evaluate(params, rest, kit.batch))
        start = time.perf_counter()
        jax.block_until_ready(evaluate(params, rest, kit.batch))
        eval_steps = _steps_for(time.perf_counter() - start, window_s)

        def run_eval(k: int) -> None:
            result = None
            for _ in range(k):
                result = evaluate(params, rest, kit.batch)
            jax.block_until_ready(result)

        out["eval"] = summarize(time_windows(run_eval, steps=eval_steps, windows=windows), batch_size)
        out["eval"]["steps_per_window"] = eval_steps
        out["eval_flops_per_step"] = eval_flops
        if eval_flops:
            out["eval_flops_per_s"] = eval_flops / out["eval"]["seconds_per_step"]
    out["train_flops_per_image"] = flops / batch_size if flops else None
    out["params"] = int(sum(np.prod(x.shape) for x in jax.tree.leaves(state.params)))
    return out
