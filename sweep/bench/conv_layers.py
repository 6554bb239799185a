"""Every distinct conv layer of the seed's CNN and ResNet50V2, timed alone: forward (compiled as eval steps are)
and forward+gradients (as train steps are), in the form models.conv_kernels picks ("ours"), as XLA's own
convolution, and in Keras on TensorFlow (oneDNN) when that peer runs; interleaved windows, so where the models'
steps lose to TensorFlow shows up layer by layer."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from models.conv_kernels import conv2d, form_for, layer_key, output_size, program_phase
from models.cuts import infer_shapes
from models.graphs import cnn_graph, resnet50v2_graph
from models.inference_options import inference_compiler_options
from sweep.bench.timing import interleave, local_window, ratio_windows, spread, steps_for

SEED_MODELS = ("cnn", "resnet50v2")
PHASES = ("fwd", "grad")


def conv_specs(model: str, image_size: int, channels: int = 3) -> list[dict]:
    """The model's conv layers grouped by shape: size (input, already padded), channels, features, kernel, stride,
    padding, bias, input_grad (False for the first conv: training needs no gradient of the image), layer names."""
    if model not in SEED_MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {SEED_MODELS}")
    graph = cnn_graph() if model == "cnn" else resnet50v2_graph()
    shapes = infer_shapes(graph, image_size, channels, model)
    specs: dict[tuple, dict] = {}
    first = True
    for layer in graph:
        if layer.kind != "conv":
            continue
        size, _, in_channels = shapes[layer.inputs[0]]
        spec = {"size": size, "channels": in_channels, "features": layer.features, "kernel": layer.kernel,
                "stride": layer.stride, "padding": layer.padding, "bias": layer.use_bias, "input_grad": not first}
        specs.setdefault(tuple(spec.values()), spec | {"layers": []})["layers"].append(layer.name)
        first = False
    return list(specs.values())


def _label(spec: dict) -> str:
    return (f"{spec['size']}x{spec['size']}x{spec['channels']} -> {spec['features']}, "
            f"{spec['kernel']}x{spec['kernel']}/{spec['stride']} {spec['padding']}")


def _functions(spec: dict, batch_size: int, form: str):
    """Jitted forward and forward+gradients (kernel, bias and, unless the first conv, input) of one conv layer."""
    keys = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(keys[0], (batch_size, spec["size"], spec["size"], spec["channels"]))
    kernel = jax.random.normal(keys[1], (spec["kernel"], spec["kernel"], spec["channels"], spec["features"])) * 0.05
    bias = jnp.zeros((spec["features"],)) if spec["bias"] else None
    out = output_size(spec["size"], spec["kernel"], spec["stride"], spec["padding"])
    dy = jax.random.normal(keys[2], (batch_size, out, out, spec["features"]))

    def forward(x, kernel, bias):
        y = conv2d(x, kernel, stride=spec["stride"], padding=spec["padding"], form=form)
        return y + bias if bias is not None else y

    def gradients(x, kernel, bias):
        if spec["input_grad"]:
            return jax.vjp(forward, x, kernel, bias)[1](dy)
        return jax.vjp(lambda kernel, bias: forward(x, kernel, bias), kernel, bias)[1](dy)

    fns = {"fwd": jax.jit(forward, compiler_options=inference_compiler_options()), "grad": jax.jit(gradients)}
    args = (x, kernel, bias)
    return {phase: (lambda k, fn=fn: _block(fn, args, k)) for phase, fn in fns.items()}


def _block(fn, args, steps: int) -> None:
    out = None
    for _ in range(steps):
        out = fn(*args)
    jax.block_until_ready(out)


def _one_call_s(run) -> float:
    import time

    run(1)  # compile
    start = time.perf_counter()
    run(1)
    return time.perf_counter() - start


def time_layer(spec: dict, batch_size: int, *, windows: int, window_s: float, peer=None, peer_layer=None,
               peer_step_s=None) -> dict:
    """One conv layer: per phase, ours / XLA / TensorFlow per-call milliseconds (median, spread) and ratios."""
    key = layer_key((batch_size, spec["size"], spec["size"], spec["channels"]),
                    (spec["kernel"], spec["kernel"], spec["channels"], spec["features"]), spec["stride"],
                    spec["padding"], jnp.float32)
    forms = {}
    for phase, program in (("fwd", "inference"), ("grad", "train")):  # the autotuned choice, else the rule
        with program_phase(program):
            forms[phase] = form_for(spec["size"], spec["kernel"], spec["stride"], spec["padding"], key=key)
    ours = {phase: _functions(spec, batch_size, form)[phase] for phase, form in forms.items()}
    runs = {"ours": ours}
    if set(forms.values()) != {"xla"}:
        runs["xla"] = _functions(spec, batch_size, "xla")
    row = {"shape": _label(spec), "layers": spec["layers"], "count": len(spec["layers"]), "form": forms["grad"],
           "inference_form": forms["fwd"]}
    for i, phase in enumerate(PHASES):
        candidates = {name: local_window(fns[phase], steps_for(_one_call_s(fns[phase]), window_s))
                      for name, fns in runs.items()}
        if peer is not None:
            candidates["tensorflow"] = peer.window(phase, window_s, layer=peer_layer, step_s=peer_step_s[i])
        samples = interleave(candidates, windows)
        figures = {f"{name}_ms": 1e3 * spread(s["wall"])["median"] for name, s in samples.items()}
        figures.update({f"{name}_cpu_ms": 1e3 * spread(s["cpu"])["median"] for name, s in samples.items()})
        figures["spread_ms"] = {name: {k: round(1e3 * v, 3) for k, v in spread(s["wall"]).items()}
                                for name, s in samples.items()}
        for name in samples:
            if name != "ours":
                figures[f"{name}_over_ours"] = ratio_windows(samples[name], samples["ours"])
        row[phase] = figures
    return row


def time_conv_layers(models: tuple[str, ...], image_size: int, batch_size: int, *, windows: int, window_s: float,
                     tf_peer=None, log=print) -> dict:
    """Per model, each distinct conv layer's figures and the totals over all its layers (count x median ms)."""
    out: dict = {"image_size": image_size, "batch_size": batch_size, "windows": windows,
                 "peer": "keras_tensorflow" if tf_peer is not None else None, "models": {}}
    for model in models:
        specs = conv_specs(model, image_size)
        peer_steps = None
        if tf_peer is not None:
            peer_steps = tf_peer.ask(cmd="conv_layers", layers=specs, batch_size=batch_size)["step_s"]
        rows = []
        for i, spec in enumerate(specs):
            log(f"[bench] conv_layers {model}: {_label(spec)} ({i + 1}/{len(specs)})")
            rows.append(time_layer(spec, batch_size, windows=windows, window_s=window_s, peer=tf_peer,
                                   peer_layer=i, peer_step_s=peer_steps and peer_steps[i]))
        out["models"][model] = {"layers": rows, "totals": _totals(rows)}
    return out


def _totals(rows: list[dict]) -> dict:
    """Sum over layers of count x median ms per candidate and phase, and TensorFlow's total over ours."""
    totals: dict = {}
    for phase in PHASES:
        names = sorted({key[:-3] for r in rows for key in r[phase]
                        if key.endswith("_ms") and not key.endswith("_cpu_ms") and key != "spread_ms"})
        phase_totals = {}
        for name in names:  # a layer without an "xla" entry runs XLA's convolution as ours
            values = [r[phase].get(f"{name}_ms", r[phase]["ours_ms"]) * r["count"] for r in rows]
            phase_totals[f"{name}_ms"] = float(np.sum(values))
        if "tensorflow_ms" in phase_totals:
            phase_totals["tensorflow_over_ours"] = phase_totals["tensorflow_ms"] / phase_totals["ours_ms"]
        totals[phase] = phase_totals
    return totals
