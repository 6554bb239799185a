"""Autotuning: the fastest measured form is chosen per layer and phase, a program keeps XLA's conv or YNNPACK when
its A/B says so, the table is built once per machine signature and read by a second process without measuring,
and what it chooses computes the same numbers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweep.engine import autotune

REPO = Path(__file__).resolve().parents[2]
SIGNATURE = {"cpu_vendor": "TestVendor", "cpu_family": "1", "cpu_model_number": "2", "cpu_stepping": "3",
             "isa_flags": ["avx2"], "usable_cores": 2, "jaxlib": "0.0-test"}
FIRST = "b2_8x8x3_k3x3x3x4_s1_SAME_float32"  # the image's conv: no input gradient
SMALL = "b2_4x4x8_k3x3x8x8_s1_SAME_float32"
WIDE = "b2_4x4x8_k1x1x8x16_s1_VALID_float32"


class FakeTimer:
    """Times nothing: each form costs what `costs` says (default 1.0); counts every measurement."""

    def __init__(self, costs=None, program_costs=None):
        self.costs = costs or {}
        self.program_costs = program_costs or {}
        self.calls: list[tuple] = []

    def layers_of(self, program):
        self.calls.append(("layers_of", program.key))
        return [FIRST, SMALL, WIDE]

    def layer(self, key, phase, forms, first, deadline):
        self.calls.append(("layer", key, phase, first))
        return {form: self.costs.get((key, phase, form), 1.0) for form in forms}

    def program(self, program, phase, variants, deadline):
        self.calls.append(("program", program.key, phase, tuple(variants)))
        return {name: self.program_costs.get((phase, name), 1.0) for name in variants}


def _program(label="cnn", size=8):
    return autotune.Program(model="cnn", label=label, image_size=size, batch_size=2, build=lambda: None)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSION_SWEEP_CACHE", str(tmp_path))
    return tmp_path


def test_choose_keeps_the_baseline_unless_another_is_clearly_faster():
    assert autotune.choose({"xla": 1.0, "im2col": 0.99}, "xla") == "xla"  # within the noise margin
    assert autotune.choose({"xla": 1.0, "im2col": 0.5, "xla/xla/im2col": 0.7}, "xla") == "im2col"
    assert autotune.choose({"xla": 1.0, "im2col": 2.0}, "xla") == "xla"
    assert autotune.choose({}, "xla") == "xla"


def test_each_layer_and_phase_gets_its_fastest_form(cache):
    timer = FakeTimer(costs={(SMALL, "train", "im2col"): 0.4, (SMALL, "inference", "im2col"): 0.5,
                             (WIDE, "train", "xla/xla/im2col_per_image"): 0.2, (FIRST, "inference", "im2col"): 2.0})
    table = autotune.ensure_table([_program()], timer=timer, signature=SIGNATURE, log=lambda _: None)
    assert table["layers"]["train"][SMALL]["form"] == "im2col"
    assert table["layers"]["inference"][SMALL]["form"] == "im2col"
    assert table["layers"]["train"][WIDE]["form"] == "xla/xla/im2col_per_image"
    assert table["layers"]["inference"][WIDE]["form"] == "xla"
    assert table["layers"]["inference"][FIRST]["form"] == "xla"
    assert set(table["layers"]["inference"][SMALL]["seconds"]) == set(autotune.INFERENCE_CANDIDATES)
    firsts = {call[1]: call[3] for call in timer.calls if call[0] == "layer"}
    assert firsts[FIRST] is True and firsts[SMALL] is False  # the image's conv is timed without an input gradient


def test_a_program_keeps_xlas_conv_and_ynnpack_when_its_ab_says_so(cache):
    timer = FakeTimer(costs={(SMALL, "train", "im2col"): 0.4, (SMALL, "inference", "im2col"): 0.4},
                      program_costs={("train", "xla"): 0.5, ("inference", "tuned+ynnpack"): 0.5})
    table = autotune.ensure_table([_program()], timer=timer, signature=SIGNATURE, log=lambda _: None)
    entry = table["programs"][_program().key]
    assert entry["train"]["forms"] == "xla" and entry["inference"] == entry["inference"] | {
        "forms": "tuned", "ynnpack": True}
    forms = autotune.forms_for(table, _program().key)
    assert forms["train"][SMALL] == "xla"  # the A/B overrules the per-layer choice for this program
    assert forms["inference"][SMALL] == "im2col"
    assert autotune.forms_for(table, "another program")["train"][SMALL] == "im2col"
    assert autotune.keep_ynnpack(table, _program().key)


def test_programs_whose_layers_all_chose_xla_skip_the_redundant_variants(cache):
    timer = FakeTimer()
    autotune.ensure_table([_program()], timer=timer, signature=SIGNATURE, log=lambda _: None)
    variants = {call[2]: call[3] for call in timer.calls if call[0] == "program"}
    assert variants == {"train": ("tuned",), "inference": ("tuned", "tuned+ynnpack")}


def test_the_table_is_measured_once_then_reused_and_extended(cache):
    timer = FakeTimer()
    first = autotune.ensure_table([_program()], timer=timer, signature=SIGNATURE, log=lambda _: None)
    path = autotune.table_path(SIGNATURE)
    assert path.parent == cache / "autotune" and json.loads(path.read_text()) == first
    measured = len(timer.calls)
    autotune.ensure_table([_program()], timer=timer, signature=SIGNATURE, log=lambda _: None)
    assert len(timer.calls) == measured  # nothing measured again
    autotune.ensure_table([_program(), _program("cnn2")], timer=timer, signature=SIGNATURE, log=lambda _: None)
    new = timer.calls[measured:]
    assert not any(call[0] == "layer" for call in new)  # the same layer shapes: only the new program's A/B
    assert {call[1] for call in new if call[0] == "program"} == {_program("cnn2").key}
    other = dict(SIGNATURE, isa_flags=["avx2", "avx512f"])
    assert autotune.table_path(other) != path  # another CPU: another table


def test_rebuild_measures_again(cache):
    timer = FakeTimer()
    autotune.ensure_table([_program()], timer=timer, signature=SIGNATURE, log=lambda _: None)
    measured = len(timer.calls)
    autotune.ensure_table([_program()], timer=timer, signature=SIGNATURE, log=lambda _: None, rebuild=True)
    assert sum(call[0] == "layer" for call in timer.calls[measured:]) == 6


def test_the_costliest_layer_shapes_are_timed_first():
    timer = FakeTimer()
    autotune.ensure_table([_program()], timer=timer, signature=SIGNATURE, log=lambda _: None)
    order = list(dict.fromkeys(call[1] for call in timer.calls if call[0] == "layer"))
    assert order == [SMALL, FIRST, WIDE]  # 2x4x4x9x8x8 > 2x8x8x9x3x4 > 2x4x4x8x16 multiply-adds


def test_a_second_process_reuses_the_table_without_measuring(cache):
    autotune.ensure_table([_program()], timer=FakeTimer(), signature=SIGNATURE, log=lambda _: None)
    script = f"""
import sys
from sweep.engine import autotune
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_autotune import FakeTimer, SIGNATURE, _program
timer = FakeTimer()
table = autotune.ensure_table([_program()], timer=timer, signature=SIGNATURE, log=print)
print("calls", len(timer.calls), "programs", len(table["programs"]))
"""
    env = dict(os.environ, PYTHONPATH=str(REPO), FUSION_SWEEP_CACHE=str(cache))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "calls 0 programs 1" in out.stdout


def test_a_process_with_another_core_count_reads_the_nearest_table_of_its_cpu(cache):
    autotune.ensure_table([_program()], timer=FakeTimer(), signature=SIGNATURE, log=lambda _: None)
    assert autotune.nearest_table(dict(SIGNATURE, usable_cores=8))["signature"] == SIGNATURE
    assert autotune.nearest_table(dict(SIGNATURE, usable_cores=8, cpu_model_number="9")) is None


def test_activate_hands_the_choice_to_models(cache):
    from models import conv_kernels, inference_options

    timer = FakeTimer(costs={(SMALL, "train", "im2col"): 0.4}, program_costs={("inference", "tuned+ynnpack"): 0.5})
    autotune.ensure_table([_program()], timer=timer, signature=SIGNATURE, log=lambda _: None)
    try:
        table = autotune.load_table(autotune.table_path(SIGNATURE))
        summary = autotune.activate(table, _program().key)
        assert summary["ynnpack"] and inference_options.inference_compiler_options() == {}
        assert conv_kernels.form_for(4, 3, 1, "SAME", "cpu", key=SMALL) == "im2col"
    finally:
        autotune.activate(None)
    assert conv_kernels.chosen_forms() is None


def test_machine_signature_names_the_cpu_and_jaxlib():
    signature = autotune.machine_signature()
    assert set(signature) == set(SIGNATURE)
    assert signature["usable_cores"] >= 1 and signature["jaxlib"]


@pytest.mark.slow  # ~40 s on 2 shared cores: eight small compiles and a model trace
def test_the_jax_timer_times_every_candidate_of_a_layer_and_finds_a_models_layers():
    timer = autotune.JaxTimer(windows=1, window_s=0.001)
    for phase, candidates in (("train", autotune.TRAIN_CANDIDATES), ("inference", autotune.INFERENCE_CANDIDATES)):
        seconds = timer.layer(SMALL, phase, candidates, first=False, deadline=float("inf"))
        assert set(seconds) == set(candidates) and all(s > 0 for s in seconds.values())
    from models.registry import build_model
    import flax.nnx as nnx

    program = autotune.Program(model="cnn", label="cnn", image_size=32, batch_size=2,
                               build=lambda: build_model("cnn", image_size=32, rngs=nnx.Rngs(0)))
    keys = timer.layers_of(program)
    assert len(keys) == 5 and keys[0] == "b2_32x32x3_k3x3x3x32_s1_SAME_float32"


@pytest.mark.slow  # ~25 s: two compiles of the CNN's gradient
def test_a_model_under_chosen_forms_computes_what_xlas_conv_computes():
    """Whatever the table picks per layer and phase, logits and gradients stay XLA's (within 1e-4)."""
    import flax.nnx as nnx
    import jax
    import jax.numpy as jnp
    import numpy as np

    from models import conv_kernels
    from models.registry import build_model

    images, labels = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3)), jnp.array([0, 1])
    model = build_model("cnn", image_size=32, rngs=nnx.Rngs(0))
    model.eval()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    with conv_kernels.recording_layers() as keys:
        jax.eval_shape(lambda p: nnx.merge(graphdef, p, rest)(images), params)

    def logits_and_grads(forms):
        def loss(params):
            logits = nnx.merge(graphdef, params, rest)(images)
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), labels]), logits

        with conv_kernels.use_forms(forms):
            return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

    candidates = [f for f in autotune.TRAIN_CANDIDATES if f != "xla"]
    chosen = {"train": {k: candidates[i % len(candidates)] for i, k in enumerate(keys)}}
    ours = logits_and_grads(chosen)
    reference = logits_and_grads({"train": {k: "xla" for k in keys}})
    for got, want in zip(jax.tree.leaves(ours), jax.tree.leaves(reference)):
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        np.testing.assert_allclose(got, want, atol=1e-4 * max(1.0, np.abs(want).max()), rtol=0)


def test_the_sweep_driver_starts_no_tuning_process_when_every_program_is_stored(cache, monkeypatch):
    from sweep.configs.schema import TrainConfig
    from sweep.files import write_json_atomic

    config = TrainConfig(model="cnn")
    signature = autotune.machine_signature(cores=1)
    table = autotune._new_table(signature)
    table["programs"][autotune.config_program_key(config)] = {"layers": [], "train": {}, "inference": {}}
    write_json_atomic(autotune.table_path(signature), table)

    def no_process(*args, **kwargs):
        raise AssertionError("a tuning process was started")

    monkeypatch.setattr(autotune.subprocess, "Popen", no_process)
    monkeypatch.setattr(autotune.runtime, "accelerator_visible", lambda: False)
    assert autotune.tune_in_subprocess([config, config.replace(seed=2)], 2, cores=1, budget_s=60) == 0
    assert autotune.tune_in_subprocess([config], 2, cores=1, budget_s=0) == 0  # off: nothing either
