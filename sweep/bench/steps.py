"""Train/eval step throughput and achieved FLOP/s of the seed models, timed with the same steps training runs."""
from __future__ import annotations

import time

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np

from models.registry import BUILDABLE_NAMES, build_model
from models.spec import FusionSpec
from sweep.bench.timing import interleave, local_window, ratio_windows, steps_for, summarize
from sweep.engine.steps import step_kit


class ParamMismatch(ValueError):
    """The peer built a model with another trainable parameter count than ours: its timing compares other work."""


def check_same_params(model: str, ours: int, theirs: int | None, peer: str) -> None:
    if theirs is None or int(theirs) != int(ours):
        raise ParamMismatch(f"{model}: {peer} has {theirs} trainable parameters, ours {ours:,}; the figure would "
                            f"compare different models")


def _setting(backend: str, jit_compile) -> str:
    from sweep.bench.peer import setting_name

    return setting_name(backend, jit_compile)


def build_bench_model(name: str, image_size: int, *, num_classes: int = 2, channels: int = 3, seed: int = 0,
                      precision: str = "float32"):
    """One of the seed's three models: cnn, resnet50v2 (Flatten/Dense(2048) head), fusion (FusionSpec()), or
    another backbone with the seed's Flatten head (xception, ...), computing in bfloat16 (params float32) when
    precision says so."""
    if name not in BUILDABLE_NAMES:
        raise ValueError(f"unknown bench model {name!r}; choose from: {', '.join(BUILDABLE_NAMES)}")
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


class ModelTimer:
    """One seed model's train and eval steps, compiled as training compiles them, on a fixed random batch:
    compile figures at construction, then `train(k)` / `evaluate(k)` run k steps and block."""

    def __init__(self, name: str, *, image_size: int, batch_size: int, precision: str = "float32",
                 phases: tuple[str, ...] = ("train", "eval")):
        model = build_bench_model(name, image_size, precision=precision)
        self.kit = step_kit(model, batch_size=batch_size, image_size=image_size)
        self.figures: dict = {"model": name, "image_size": image_size, "batch_size": batch_size,
                              "precision": precision}
        start = time.perf_counter()
        lowered = self.kit.train_step.lower(self.kit.state, self.kit.batch)
        traced = time.perf_counter()
        self._train = lowered.compile()
        self.figures.update(train_trace_s=traced - start, train_compile_s=time.perf_counter() - traced,
                            train_flops_per_step=compiled_flops(self._train))
        self.state = self.kit.state
        self.train(1)  # the first call allocates
        if "eval" in phases:
            start = time.perf_counter()
            self._evaluate = self.kit.eval_step.lower(self.state.params, self.state.rest, self.kit.batch).compile()
            self.figures.update(eval_compile_s=time.perf_counter() - start,
                                eval_flops_per_step=compiled_flops(self._evaluate))
            self.evaluate(1)
        self.step_s = {phase: self._one_step(phase) for phase in phases}
        self.figures["params"] = int(sum(np.prod(x.shape) for x in jax.tree.leaves(self.state.params)))

    def train(self, steps: int) -> None:
        for _ in range(steps):
            self.state, _ = self._train(self.state, self.kit.batch)
        jax.block_until_ready(self.state)

    def evaluate(self, steps: int) -> None:
        out = None
        for _ in range(steps):
            out = self._evaluate(self.state.params, self.state.rest, self.kit.batch)
        jax.block_until_ready(out)

    def run(self, phase: str):
        return self.train if phase == "train" else self.evaluate

    def _one_step(self, phase: str) -> float:
        start = time.perf_counter()
        self.run(phase)(1)
        return time.perf_counter() - start


def measure_model(name: str, *, image_size: int, batch_size: int, window_s: float, windows: int,
                  precision: str = "float32", peak_flops_per_s: float | None = None, peers: dict | None = None,
                  phases: tuple[str, ...] = ("train", "eval")) -> dict:
    """Compile and time one model's train and eval steps: images/s (median window, spread), CPU seconds, FLOP/s,
    fraction of peak. With `peers` ({backend: KerasPeer}), each peer builds the same model (once per jit_compile
    setting it runs) and its windows alternate with ours; then "peers" holds their figures and "peer_ratios" ours
    vs theirs per window: per setting ('<phase>_vs_keras_tensorflow_jit_true') and, under the backend's name, the
    ratio to its faster setting. A peer whose model has another trainable parameter count than ours gives no
    figure: its entry holds the error (ParamMismatch's text)."""
    timer = ModelTimer(name, image_size=image_size, batch_size=batch_size, precision=precision, phases=phases)
    out = dict(timer.figures)
    ready = {}
    out_peers: dict = {}
    for backend, peer in (peers or {}).items():
        try:
            built = peer.prepare_model(name, image_size, batch_size)
            out_peers[backend] = {"settings": {_setting(backend, jit): dict(info) for jit, info in built.items()}}
            for info in built.values():
                check_same_params(name, out["params"], info.get("trainable_params"), f"keras {backend}")
            ready[backend] = peer
        except Exception as err:  # noqa: BLE001 - one failed peer does not lose our figures
            out_peers.setdefault(backend, {})["error"] = f"{type(err).__name__}: {err}"
    ratios = {}
    for phase in phases:
        steps = steps_for(timer.step_s[phase], window_s)
        candidates = {"ours": local_window(timer.run(phase), steps)}
        for backend, peer in ready.items():
            candidates.update({_setting(backend, jit): peer.window(phase, window_s, jit_compile=jit)
                               for jit in peer.settings})
        samples = interleave(candidates, windows)
        out[phase] = summarize(samples["ours"], batch_size) | {"steps_per_window": steps}
        for backend, peer in ready.items():
            by_setting = {}
            for jit in peer.settings:
                setting = _setting(backend, jit)
                figures = summarize(samples[setting], batch_size)
                out_peers[backend]["settings"][setting][phase] = figures
                by_setting[setting] = (figures["seconds_per_step"], jit)
                if len(peer.settings) > 1:
                    ratios[f"{phase}_vs_keras_{setting}"] = ratio_windows(samples[setting], samples["ours"])
            fastest = min(by_setting, key=lambda s: by_setting[s][0])
            out_peers[backend][phase] = out_peers[backend]["settings"][fastest][phase] | {
                "jit_compile": by_setting[fastest][1]}
            ratios[f"{phase}_vs_keras_{backend}"] = ratio_windows(samples[fastest], samples["ours"]) | (
                {"peer_setting": fastest} if len(peer.settings) > 1 else {})
    flops = out["train_flops_per_step"]
    if flops:
        out["train_flops_per_s"] = flops / out["train"]["seconds_per_step"]
        if peak_flops_per_s:
            out["train_fraction_of_peak"] = out["train_flops_per_s"] / peak_flops_per_s
    if out.get("eval_flops_per_step"):
        out["eval_flops_per_s"] = out["eval_flops_per_step"] / out["eval"]["seconds_per_step"]
    out["train_flops_per_image"] = flops / batch_size if flops else None
    if peers:
        out["peers"], out["peer_ratios"] = out_peers, ratios
    return out
