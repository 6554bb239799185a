"""Conv forms and inference compile options chosen per machine by measurement, like cuDNN's autotuning, for CPU.

Two levels. Per conv layer shape and phase (inference: forward; train: forward and gradients), each candidate form
of models/conv_kernels.py is compiled and timed and the fastest kept (XLA's own conv unless another is faster by
more than MARGIN, the timing noise). Per program (one model at one image and batch size), the assembled choice is
A/B'd against XLA's conv everywhere, and inference programs also with YNNPACK on and off; the faster is kept.
All of it runs under a time budget (BUDGET_S per model), once per machine signature (CPU vendor, family, model,
stepping, ISA flags, usable cores, jaxlib version), under a lock, and the table is written atomically to
$FUSION_SWEEP_CACHE/autotune/<signature id>.json; every later process with the same signature (trials, other
nodes sharing the cache, SHAP, the bench) reads it without measuring. docs/autotune.md says more.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence

from data.locking import exclusive
from sweep import runtime
from sweep.files import write_json_atomic

TABLE_VERSION = 1
ENV = "FUSION_SWEEP_AUTOTUNE"  # "0"/"off": never measure (a stored table is still used); a number: budget seconds
BUDGET_S = 60.0  # per model: the per-layer timings and the program A/B together
LAYER_SHARE = 0.5  # of a model's budget the per-layer stage may use; the program A/B gets the rest
MARGIN = 0.03  # a candidate replaces the baseline only when faster by more than this share (window noise)
# XLA's conv first (the baseline, always timed), then the forms of models/conv_kernels.py that can win: the conv
# as one matmul (autodiff derives both gradients), and XLA's forward with a matmul weight gradient (per image or
# batched) or with both gradients as matmuls. The other plans of conv_kernels.FORMS mix the same parts.
TRAIN_CANDIDATES = ("xla", "im2col", "xla/xla/im2col_per_image", "xla/xla/im2col", "xla/im2col/im2col")
INFERENCE_CANDIDATES = ("xla", "im2col")
PHASES = ("train", "inference")
PROGRAM_VARIANTS = {"train": ("tuned", "xla"), "inference": ("tuned", "xla", "tuned+ynnpack")}


@dataclasses.dataclass(frozen=True)
class Program:
    """One model's programs to tune: `model` names its budget (cnn, resnet50v2, fusion, ...), `label` the exact
    configuration, `build()` returns the nnx model (eval or train mode is set by the timer)."""

    model: str
    label: str
    image_size: int
    batch_size: int
    build: Callable[[], object] = dataclasses.field(compare=False, repr=False)
    precision: str = "float32"
    channels: int = 3  # the model's input channels

    @property
    def key(self) -> str:
        return program_key(self.label, self.image_size, self.batch_size, self.precision)


def program_key(label: str, image_size: int, batch_size: int, precision: str = "float32") -> str:
    return f"{label}@{image_size}px_b{batch_size}_{precision}"


class Timer(Protocol):
    """What measures (injectable, so the selection logic is testable without timing anything)."""

    def layers_of(self, program: Program) -> list[str]:
        """The conv layer keys of the program's model, one per conv layer in order (a repeated shape repeats)."""

    def layer(self, key: str, phase: str, forms: Sequence[str], first: bool, deadline: float) -> dict[str, float]:
        """Seconds per call of each form of this conv layer shape in `phase` (first: no input gradient); forms
        not started by `deadline` (time.perf_counter()) are left out."""

    def program(self, program: Program, phase: str, variants: dict[str, dict], deadline: float) -> dict[str, float]:
        """Seconds per step of the program in `phase` under each variant ({name: {"forms": ..., "ynnpack": b}});
        variants not started by `deadline` are left out."""


# ---------------------------------------------------------------- the machine and the table's place

def machine_signature(cores: int | None = None) -> dict:
    """What makes kernel timings differ between machines: the CPU and the jaxlib that compiles for it (`cores`:
    as a process pinned to that many cores would see it)."""
    facts = runtime.cpu_facts()
    if cores is not None:
        facts["usable_cores"] = min(int(cores), facts["usable_cores"])
    try:
        jaxlib = metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        jaxlib = None
    return {key: facts[key] for key in ("cpu_vendor", "cpu_family", "cpu_model_number", "cpu_stepping",
                                         "isa_flags", "usable_cores")} | {"jaxlib": jaxlib}


def signature_id(signature: dict) -> str:
    return hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:16]


def table_dir() -> Path:
    return runtime.user_cache_dir() / "autotune"


def table_path(signature: dict | None = None) -> Path:
    return table_dir() / f"{signature_id(signature or machine_signature())}.json"


def load_table(path: Path | None = None) -> dict | None:
    """This machine's table, or None when none was built yet (or it is unreadable or of another version)."""
    path = Path(path) if path is not None else table_path()
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return table if table.get("version") == TABLE_VERSION else None


def nearest_table(signature: dict | None = None) -> dict | None:
    """This machine's table; else the table of the same CPU and jaxlib measured with the core count nearest to
    ours (SHAP after a sweep runs on all cores, its trials on fewer), or None."""
    signature = signature or machine_signature()
    table = load_table(table_path(signature))
    if table is not None:
        return table
    same_cpu = [t for t in (load_table(p) for p in sorted(table_dir().glob("*.json"))) if t is not None
                and {k: v for k, v in t["signature"].items() if k != "usable_cores"}
                == {k: v for k, v in signature.items() if k != "usable_cores"}]
    return min(same_cpu, key=lambda t: abs(t["signature"]["usable_cores"] - signature["usable_cores"]), default=None)


def _new_table(signature: dict) -> dict:
    return {"version": TABLE_VERSION, "signature": signature, "signature_id": signature_id(signature),
            "layers": {phase: {} for phase in PHASES}, "programs": {}}


# ---------------------------------------------------------------- selection

def choose(seconds: dict[str, float], baseline: str, margin: float = MARGIN) -> str:
    """The fastest candidate, unless it beats `baseline` by `margin` or less (then the baseline)."""
    measured = {name: s for name, s in seconds.items() if s is not None}
    if not measured:
        return baseline
    best = min(measured, key=measured.get)
    if baseline in measured and measured[best] >= measured[baseline] * (1.0 - margin):
        return baseline
    return best


def _flops(key: str) -> float:
    """Multiply-adds x 2 of one forward call of the conv layer `key`."""
    from models.conv_kernels import output_size, parse_layer_key

    spec = parse_layer_key(key)
    batch, height, width, channels = spec["x_shape"]
    k_h, k_w, _, features = spec["kernel_shape"]
    out_h = output_size(height, k_h, spec["stride"], spec["padding"])
    out_w = output_size(width, k_w, spec["stride"], spec["padding"])
    return 2.0 * batch * out_h * out_w * k_h * k_w * channels * features


def _first_conv(key: str) -> bool:
    """The model's input conv needs no input gradient: its input has the image's channels (1 or 3)."""
    from models.conv_kernels import parse_layer_key

    return parse_layer_key(key)["x_shape"][-1] <= 4


def forms_for(table: dict | None, program_key_: str | None = None) -> dict[str, dict[str, str]]:
    """{phase: {layer_key: form}} for a program: every layer the table chose a form for, except that a program
    whose A/B found XLA's conv everywhere faster gets "xla" for its own layers in that phase."""
    if not table:
        return {phase: {} for phase in PHASES}
    from models.conv_kernels import any_batch_key

    forms = {phase: {} for phase in PHASES}
    for phase in PHASES:
        for key, chosen in table["layers"].get(phase, {}).items():
            forms[phase][key] = chosen["form"]
            forms[phase].setdefault(any_batch_key(key), chosen["form"])  # the same shape at an unmeasured batch
    entry = table["programs"].get(program_key_ or "", {})
    for phase in PHASES:
        if entry.get(phase, {}).get("forms") == "xla":
            forms[phase].update({key: "xla" for key in entry.get("layers", [])})
    return forms


def keep_ynnpack(table: dict | None, program_key_: str | None) -> bool:
    entry = (table or {}).get("programs", {}).get(program_key_ or "", {})
    return bool(entry.get("inference", {}).get("ynnpack", False))


def activate(table: dict | None, program_key_: str | None = None) -> dict:
    """Hand the table's choice for this program to models/: the conv forms every program this process traces from
    now on uses, and whether its inference programs keep YNNPACK. Returns what was set."""
    from models.conv_kernels import set_forms
    from models.inference_options import set_inference_ynnpack

    forms = forms_for(table, program_key_)
    ynnpack = keep_ynnpack(table, program_key_)
    set_forms(forms if table else None)
    set_inference_ynnpack(ynnpack)
    return {"table": bool(table), "program": program_key_, "ynnpack": ynnpack,
            "layers": {phase: len(v) for phase, v in forms.items()}}


def activate_cached(program_key_: str | None = None) -> dict:
    """activate() with this machine's stored table (nearest_table), never measuring (none: the built-in rules)."""
    return activate(nearest_table(), program_key_)


# ---------------------------------------------------------------- building the table

def ensure_table(programs: Iterable[Program], *, budget_s: float = BUDGET_S, rebuild: bool = False,
                 timer: Timer | None = None, log: Callable[[str], None] = print,
                 signature: dict | None = None) -> dict:
    """This machine's table holding every program in `programs`: read as it is when it does; else, under the
    table's lock, the missing layers and programs are measured (`rebuild`: all of them again) and the table is
    rewritten atomically. Another process measuring the same table meanwhile is waited for, not repeated."""
    programs = list(programs)
    signature = signature or machine_signature()
    path = table_path(signature)
    table = load_table(path)
    if table is not None and not rebuild and all(p.key in table["programs"] for p in programs):
        return table
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".lock-{path.stem}")
    with exclusive(lock, on_wait=lambda: log(f"[autotune] waiting for another process tuning {path.name}")):
        table = load_table(path) or _new_table(signature)
        todo = [p for p in programs if rebuild or p.key not in table["programs"]]
        if todo:
            timer = timer or JaxTimer()
            measured: set[tuple[str, str]] = set()
            for model in dict.fromkeys(p.model for p in todo):
                _tune_model(table, [p for p in todo if p.model == model], timer, budget_s, rebuild, measured, log)
            table["updated_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            write_json_atomic(path, table)
    return table


def _tune_model(table: dict, programs: list[Program], timer: Timer, budget_s: float, rebuild: bool,
                measured: set, log) -> None:
    start = time.perf_counter()
    deadline = start + budget_s
    layer_deadline = start + budget_s * LAYER_SHARE
    model = programs[0].model
    layers = {p.key: timer.layers_of(p) for p in programs}
    # the costliest shapes first (FLOPs x how often the programs run them): the budget goes where time goes
    cost: dict[str, float] = {}
    for ks in layers.values():
        for k in ks:
            cost[k] = cost.get(k, 0.0) + _flops(k)
    keys = sorted(cost, key=cost.get, reverse=True)
    log(f"[autotune] {model}: {len(keys)} conv layer shapes x 2 phases, then {len(programs)} program(s) A/B "
        f"(<= {budget_s:.0f} s, once per machine)")
    for key in keys:
        for phase in PHASES:
            if (phase, key) in measured or (not rebuild and key in table["layers"][phase]):
                continue
            if time.perf_counter() > layer_deadline:
                continue  # out of budget: the built-in rule decides this shape
            candidates = TRAIN_CANDIDATES if phase == "train" else INFERENCE_CANDIDATES
            try:
                seconds = timer.layer(key, phase, candidates, _first_conv(key), layer_deadline)
            except Exception as err:  # noqa: BLE001 - a shape that cannot be timed keeps the rule
                log(f"[autotune] {key} {phase}: not timed ({type(err).__name__}: {err}); the built-in rule decides")
                seconds = {}
            if len(seconds) > 1:  # the budget ran out after XLA's alone: nothing compared, the rule decides
                table["layers"][phase][key] = {"form": choose(seconds, "xla"), "seconds": seconds}
            measured.add((phase, key))
    for program in programs:
        entry: dict = {"model": program.model, "layers": list(dict.fromkeys(layers[program.key]))}
        forms = forms_for(table)
        tuned_is_xla = {phase: all(forms[phase].get(k) == "xla" for k in entry["layers"]) for phase in PHASES}
        for phase in PHASES:
            names = [v for v in PROGRAM_VARIANTS[phase] if not (tuned_is_xla[phase] and v.startswith("xla"))]
            if time.perf_counter() > deadline:
                entry[phase] = {"forms": "tuned", "ynnpack": False, "note": "not A/B'd: out of budget"}
                continue
            variants = {name: {"forms": forms if name.startswith("tuned") else
                               {p: {k: "xla" for k in entry["layers"]} for p in PHASES},
                               "ynnpack": name.endswith("+ynnpack")} for name in names}
            try:
                seconds = timer.program(program, phase, variants, deadline)
            except Exception as err:  # noqa: BLE001 - keep the per-layer choice
                entry[phase] = {"forms": "tuned", "ynnpack": False, "note": f"A/B failed: {type(err).__name__}: {err}"}
                continue
            best = choose(seconds, "tuned")
            entry[phase] = {"forms": best.split("+")[0], "ynnpack": best.endswith("+ynnpack"), "seconds": seconds}
        entry["tuned_s"] = round(time.perf_counter() - start, 1)
        table["programs"][program.key] = entry
        log(f"[autotune] {program.key}: train {entry['train']['forms']}, inference {entry['inference']['forms']}"
            f"{' with YNNPACK' if entry['inference'].get('ynnpack') else ''}")
    log(f"[autotune] {model} done in {time.perf_counter() - start:.0f} s")


# ---------------------------------------------------------------- what the driver, train and the bench call

def env_budget(default: float = BUDGET_S) -> float:
    """The per-model budget $FUSION_SWEEP_AUTOTUNE sets (0 for "0", "off", "no", "false"), else `default`."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "on", "1", "yes", "true"):
        return default
    if value in ("0", "off", "no", "false"):
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        from sweep import UsageError

        raise UsageError(f"{ENV}={value!r}: expected off or a budget in seconds per model, e.g. 60") from None


def config_program_key(config) -> str:
    """The program key of a TrainConfig (what its trial activates)."""
    from sweep.configs.naming import config_label, config_of

    return program_key(config_label(config_of(config)), config.data.image_size, config.batch_size, config.precision)


def train_program(config, num_classes: int) -> Program:
    """The Program of one TrainConfig (its model, image size, batch size and precision)."""
    from sweep.configs.naming import config_label, config_of
    from sweep.engine.model_init import init_model

    image_size = config.data.image_size
    return Program(model=config.model, label=config_label(config_of(config)), image_size=image_size,
                   batch_size=config.batch_size, precision=config.precision, channels=config.pipeline.channels,
                   build=lambda: init_model(config, num_classes, image_size))


def tune_for_configs(configs: Iterable, num_classes: int, *, log: Callable[[str], None] = print,
                     budget_s: float | None = None) -> dict | None:
    """ensure_table for these training configurations in this process (CPU only: other backends use XLA's conv);
    with a zero budget ($FUSION_SWEEP_AUTOTUNE=off) the stored table as it is, or None."""
    import jax

    if jax.default_backend() != "cpu":
        return None
    budget_s = env_budget() if budget_s is None else budget_s
    if budget_s <= 0:
        return load_table()
    programs = {p.key: p for p in (train_program(c, num_classes) for c in configs)}
    return ensure_table(programs.values(), budget_s=budget_s, log=log)


def tune_in_subprocess(configs: Iterable, num_classes: int, cores: int, *, log: Callable[[str], None] = print,
                       budget_s: float | None = None) -> int:
    """tune_for_configs in a fresh process pinned to `cores` cores (a trial's count: the cores are part of the
    signature trials look their table up by), so the sweep's driver never loads JAX. Returns its exit code."""
    from sweep.configs.io import config_to_dict

    budget_s = env_budget() if budget_s is None else budget_s
    if budget_s <= 0 or runtime.accelerator_visible():
        return 0
    distinct = {config_program_key(c): c for c in configs}
    stored = load_table(table_path(machine_signature(cores)))
    if stored is not None and all(key in stored["programs"] for key in distinct):
        return 0  # every program tuned already: no process to start
    request = {"configs": [config_to_dict(c) for c in distinct.values()], "num_classes": num_classes,
               "cores": cores, "budget_s": budget_s}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(runtime.REPO_ROOT),
                                                                    os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "sweep.engine.autotune"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    proc.stdin.write(json.dumps(request))
    proc.stdin.close()
    for line in proc.stdout:
        log(line.rstrip())
    return proc.wait()


def main(argv: list[str] | None = None) -> int:
    """python -m sweep.engine.autotune < REQUEST.json: what tune_in_subprocess runs."""
    argparse.ArgumentParser(description="build this machine's autotune table for the training configs of the JSON "
                            "request on stdin (sweep.engine.autotune.tune_in_subprocess writes it)").parse_args(argv)
    request = json.loads(sys.stdin.read())
    runtime.pin_cores(int(request["cores"]))
    runtime.use_cpu_compile_flags()
    runtime.enable_compilation_cache()
    from sweep.configs.io import config_from_dict

    configs = [config_from_dict(c) for c in request["configs"]]
    log = lambda text: print(text, flush=True)  # noqa: E731
    tune_for_configs(configs, int(request["num_classes"]), log=log, budget_s=float(request["budget_s"]))
    return 0


# ---------------------------------------------------------------- the real timer (JAX)

class JaxTimer:
    """Times candidates as the bench does: compiled, then interleaved windows, median seconds per call."""

    def __init__(self, windows: int = 3, window_s: float = 0.15, program_window_s: float = 0.5):
        self.windows, self.window_s, self.program_window_s = windows, window_s, program_window_s

    def _median_seconds(self, runs: dict[str, Callable[[int], None]], window_s: float,
                        deadline: float) -> dict[str, float]:
        """Each candidate compiled and warmed (those reached by `deadline`), then `windows` rounds in which they
        take turns (order reversed every other round, so load drifting during the rounds hits them alike):
        median seconds per call."""
        import statistics

        steps = {}
        for name, run in list(runs.items()):
            if steps and time.perf_counter() > deadline:  # out of budget: the first candidate is always timed
                del runs[name]
                continue
            run(1)  # compile and warm up
            begin = time.perf_counter()
            run(1)
            steps[name] = int(min(50, max(1, round(window_s / max(time.perf_counter() - begin, 1e-6)))))
        samples: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        for i in range(self.windows):
            for name in names if i % 2 == 0 else names[::-1]:
                begin = time.perf_counter()
                runs[name](steps[name])
                samples[name].append((time.perf_counter() - begin) / steps[name])
        return {name: statistics.median(values) for name, values in samples.items()}

    def layers_of(self, program: Program) -> list[str]:
        import flax.nnx as nnx
        import jax
        import jax.numpy as jnp

        from models.conv_kernels import recording_layers

        graphdef, state = nnx.split(program.build())
        x = jax.ShapeDtypeStruct((program.batch_size, program.image_size, program.image_size, program.channels),
                                 jnp.float32)
        with recording_layers() as keys:
            jax.eval_shape(lambda state, x: nnx.merge(graphdef, state)(x), state, x)
        return list(keys)

    def layer(self, key: str, phase: str, forms: Sequence[str], first: bool, deadline: float) -> dict[str, float]:
        import jax
        import jax.numpy as jnp

        from models.conv_kernels import conv2d, parse_layer_key
        from models.inference_options import without_ynnpack_options

        spec = parse_layer_key(key)
        dtype = jnp.dtype(spec["dtype"])
        keys = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(keys[0], spec["x_shape"], dtype)
        kernel = (jax.random.normal(keys[1], spec["kernel_shape"]) * 0.05).astype(dtype)
        runs = {}
        for form in forms:
            def forward(x, kernel, form=form):
                return conv2d(x, kernel, stride=spec["stride"], padding=spec["padding"], form=form)

            if phase == "inference":
                fn = jax.jit(forward, compiler_options=without_ynnpack_options())
            else:
                dy = jax.random.normal(keys[2], jax.eval_shape(forward, x, kernel).shape, dtype)
                if first:
                    fn = jax.jit(lambda x, kernel, forward=forward, dy=dy:
                                 jax.vjp(lambda k: forward(x, k), kernel)[1](dy))
                else:
                    fn = jax.jit(lambda x, kernel, forward=forward, dy=dy: jax.vjp(forward, x, kernel)[1](dy))
            runs[form] = _blocking(fn, (x, kernel))
        return self._median_seconds(runs, self.window_s, deadline)

    def program(self, program: Program, phase: str, variants: dict[str, dict], deadline: float) -> dict[str, float]:
        from data.spec import PipelineSpec
        from models.conv_kernels import use_forms
        from models.inference_options import set_inference_ynnpack
        from sweep.engine.steps import step_kit

        runs = {}
        for name, variant in variants.items():
            if runs and time.perf_counter() > deadline:
                break
            set_inference_ynnpack(variant["ynnpack"])  # read when the eval step is made
            try:
                with use_forms(variant["forms"]):
                    kit = step_kit(program.build(), batch_size=program.batch_size, image_size=program.image_size,
                                   pipeline=PipelineSpec(channels=program.channels))
                    run = kit.train if phase == "train" else kit.evaluate
                    run(1)  # traced here, inside use_forms
            finally:
                set_inference_ynnpack(False)
            runs[name] = run
        return self._median_seconds(runs, self.program_window_s, deadline)


def _blocking(fn, args) -> Callable[[int], None]:
    import jax

    def run(steps: int) -> None:
        out = None
        for _ in range(steps):
            out = fn(*args)
        jax.block_until_ready(out)

    return run


def describe(table: dict) -> str:
    """The table as text: the machine, then per phase the layers whose form is not XLA's, then the programs."""
    sig = table["signature"]
    lines = [f"autotune table {table['signature_id']} ({table_dir() / (table['signature_id'] + '.json')})",
             f"machine: {sig['cpu_vendor']} family {sig['cpu_family']} model {sig['cpu_model_number']} stepping "
             f"{sig['cpu_stepping']}, {sig['usable_cores']} cores, {' '.join(sig['isa_flags'])}; jaxlib {sig['jaxlib']}"]
    for phase in PHASES:
        layers = table["layers"][phase]
        lines.append(f"{phase}: {len(layers)} conv layer shapes")
        for key, entry in layers.items():
            times = ", ".join(f"{f} {1e3 * s:.2f}" for f, s in entry["seconds"].items() if s is not None)
            lines.append(f"  {key:<44} {entry['form']:<26} ms: {times}")
    for key, entry in table["programs"].items():
        parts = []
        for phase in PHASES:
            e = entry[phase]
            times = ", ".join(f"{v} {1e3 * s:.1f}" for v, s in e.get("seconds", {}).items())
            parts.append(f"{phase} {e['forms']}{' +YNNPACK' if e.get('ynnpack') else ''}"
                         f" ({times or e.get('note', '')})")
        lines.append(f"program {key}: " + "; ".join(parts))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
