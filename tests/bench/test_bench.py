"""fusion-sweep bench: the JSON structure on a tiny config (not timed), peers interleaved and their ratios with
spreads, issue 16's targets, and the GPU path's imports."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sweep.bench.report import table, write_json
from sweep.bench.runner import BenchOptions, run_bench


def _tiny(**changes) -> BenchOptions:
    base = dict(models=("cnn",), sizes=(32,), batch_sizes=(2,), windows=1, window_s=0.01,
                pipeline_seconds=0.2, pipeline_images=60, peak_n=256,
                skip=("conv_layers", "compile", "shap", "ray", "seeds", "checkpoints", "flops"))
    base.update(changes)
    return BenchOptions(**base)


def _fake_measure(name, *, image_size, batch_size, window_s, windows, precision, peak_flops_per_s, peers=None):
    ratio = {"ratio": 2.0, "wall": {"min": 1.5, "max": 2.5}, "windows": [1.5, 2.0, 2.5], "cpu_ratio": 1.8}
    extra = {"peers": {b: {"model": name, "train": {"images_per_s": 5.0}} for b in peers},
             "peer_ratios": {f"train_vs_keras_{b}": ratio for b in peers}} if peers else {}
    return extra | {"model": name, "image_size": image_size, "batch_size": batch_size, "precision": precision,
            "train": {"images_per_s": 10.0, "seconds_per_step": batch_size / 10.0}, "eval": {"images_per_s": 30.0},
            "train_flops_per_step": 1e9, "train_flops_per_image": 1e9 / batch_size, "train_compile_s": 1.0,
            "train_flops_per_s": 1e9 / (batch_size / 10.0), "train_fraction_of_peak": 0.1}


def test_run_collects_every_section_and_one_broken_section_does_not_lose_the_rest(monkeypatch):
    import sweep.bench.peak as peak
    import sweep.bench.steps as steps

    monkeypatch.setattr(peak, "matmul_peak", lambda dtype, n: {"dtype": dtype, "n": n, "flops_per_s": 1e11})
    monkeypatch.setattr(steps, "measure_model", _fake_measure)

    def broken(*args, **kwargs):
        raise RuntimeError("pipeline exploded")

    import sweep.bench.pipeline as pipeline
    monkeypatch.setattr(pipeline, "pipeline_speed", broken)
    options = BenchOptions(models=("cnn", "resnet50v2"), sizes=(64,), batch_sizes=(32, 16),
                           skip=("conv_layers", "compile", "shap", "ray", "seeds", "checkpoints", "flops"))
    result = run_bench(options, log=lambda _: None)
    assert [(r["model"], r["batch_size"]) for r in result["models"]] == [
        ("cnn", 32), ("resnet50v2", 32), ("cnn", 16), ("resnet50v2", 16)]
    assert "pipeline exploded" in result["pipeline"]["error"]
    assert result["targets"]["shap.ratio <= 1.25"] == {"value": None, "met": None}
    assert result["targets"]["seeds section present"]["met"] is False
    assert "resnet50v2" in table(result)


@pytest.mark.slow
def test_tiny_run_has_every_figure_and_writes_json(tmp_path):
    result = run_bench(_tiny(), log=lambda _: None)
    row = result["models"][0]
    assert "error" not in row, row.get("traceback")
    assert row["train"]["images_per_s"] > 0 and row["eval"]["images_per_s"] > 0
    assert row["train_flops_per_step"] > 0 and 0 < row["train_fraction_of_peak"]
    assert row["train_compile_s"] > 0
    assert result["peak"]["flops_per_s"] > 0
    assert result["pipeline"]["images_per_s"] > 0 and result["pipeline"]["by_size"]["32"]["peak_rss_mb"] > 0
    assert "prepared synthetic dataset" in result["pipeline"]["source"]
    assert result["targets"]["pipeline_vs_fastest_model_32px >= 10"]["value"] > 0
    assert {"hardware", "versions", "load", "targets"} <= set(result)
    assert len(result["load"]["before"]) == 3 and len(result["load"]["after"]) == 3
    path = write_json(tmp_path / "b.json", result)
    assert json.loads(path.read_text())["models"][0]["model"] == "cnn"
    text = table(result)
    assert "cnn" in text and "peak" in text


def test_quick_options_are_smaller_than_full():
    quick, full = BenchOptions.for_device("cpu", True), BenchOptions.for_device("cpu", False)
    assert quick.sizes == full.sizes == (64, 128) and quick.batch_sizes == (32,) and full.batch_sizes == (32, 16)
    assert quick.windows < full.windows and quick.ray_trials == full.ray_trials == 8  # the issue's target: 8 trials
    assert BenchOptions.for_device("gpu", False).sizes == (256,)
    with pytest.raises(ValueError, match="device must be one of"):
        BenchOptions.for_device("tpu", False)


def test_unknown_model_is_refused_before_work():
    with pytest.raises(ValueError, match="choose from"):
        run_bench(_tiny(models=("vgg",)), log=lambda _: None)


class FakePeer:
    python, hello = "/fake/python", {"backend": "fake", "versions": {}}

    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


def test_peers_windows_become_ratios_with_their_spread_and_the_peers_are_closed(monkeypatch):
    import sweep.bench.peak as peak
    import sweep.bench.peer as peer
    import sweep.bench.steps as steps

    fakes = {"jax": FakePeer(), "tensorflow": FakePeer()}
    monkeypatch.setattr(peak, "matmul_peak", lambda dtype, n: {"dtype": dtype, "n": n, "flops_per_s": 1e11})
    monkeypatch.setattr(steps, "measure_model", _fake_measure)
    monkeypatch.setattr(peer, "open_peers", lambda python, log: (fakes, {}))
    options = BenchOptions(models=("cnn", "resnet50v2"), sizes=(64,), batch_sizes=(32,), peer="keras",
                           peer_models=("resnet50v2",), skip=("conv_layers", "compile", "pipeline", "shap", "ray",
                                                             "seeds", "checkpoints", "flops"))
    result = run_bench(options, log=lambda _: None)
    assert result["ratios"] == {"resnet50v2_train_vs_keras_jax": 2.0, "resnet50v2_train_vs_keras_jax_64px_b32": 2.0,
                                "resnet50v2_train_vs_keras_tensorflow": 2.0,
                                "resnet50v2_train_vs_keras_tensorflow_64px_b32": 2.0}
    assert result["ratio_spread"]["resnet50v2_train_vs_keras_tensorflow"]["windows"] == [1.5, 2.0, 2.5]
    assert [r["model"] for r in result["peers"]["keras_jax"]["results"]] == ["resnet50v2"]
    assert all("peers" not in row for row in result["models"])
    assert all(fake.closed for fake in fakes.values())
    assert "[1.50-2.50] over 3 windows, CPU seconds 1.80x" in table(result)


def test_with_a_peer_every_size_gets_tensorflow_ratios_and_the_headline_is_the_first_size(monkeypatch):
    import sweep.bench.peak as peak
    import sweep.bench.peer as peer
    import sweep.bench.steps as steps

    fakes = {"jax": FakePeer(), "tensorflow": FakePeer()}
    monkeypatch.setattr(peak, "matmul_peak", lambda dtype, n: {"dtype": dtype, "n": n, "flops_per_s": 1e11})

    def measure(name, **kwargs):
        row = _fake_measure(name, **kwargs)
        for key in row.get("peer_ratios", {}):
            row["peer_ratios"][key] = dict(row["peer_ratios"][key], ratio=kwargs["image_size"] / 64)
        return row

    monkeypatch.setattr(steps, "measure_model", measure)
    monkeypatch.setattr(peer, "open_peers", lambda python, log: (fakes, {}))
    options = BenchOptions.for_device("cpu", True, models=("cnn",), peer="keras", peer_models=("cnn",),
                                      skip=("conv_layers", "compile", "pipeline", "shap", "ray", "seeds", "checkpoints",
                                            "flops"))
    result = run_bench(options, log=lambda _: None)
    ratios = result["ratios"]
    assert ratios["cnn_train_vs_keras_tensorflow"] == 1.0  # the 64 px headline, not overwritten by 128 px
    assert ratios["cnn_train_vs_keras_tensorflow_64px_b32"] == 1.0
    assert ratios["cnn_train_vs_keras_tensorflow_128px_b32"] == 2.0
    assert "cnn_train_vs_keras_jax_128px_b32" not in ratios  # the larger sizes: TensorFlow's peer alone
    assert set(result["train_fraction_of_peak"]) == {"cnn_64px_b32", "cnn_128px_b32"}
    assert result["targets"]["cnn_train_vs_keras_tensorflow_128px_b32 >= 1.0"] == {"value": 2.0, "met": True}


def test_a_peer_with_another_trainable_param_count_gives_no_figure():
    from sweep.bench.runner import _collect_peers, targets
    from sweep.bench.steps import ParamMismatch, check_same_params

    check_same_params("cnn", 1000, 1000, "keras tensorflow")
    with pytest.raises(ParamMismatch, match="keras tensorflow has 999 trainable parameters, ours 1,000"):
        check_same_params("cnn", 1000, 999, "keras tensorflow")
    result = {"models": [{"model": "cnn", "image_size": 64, "batch_size": 32,
                          "peers": {"tensorflow": {"error": "ParamMismatch: cnn: ..."}}, "peer_ratios": {}}]}
    _collect_peers(result, {"tensorflow": FakePeer()}, {})
    assert result["ratios"] == {} and result["peer_errors"] == ["cnn 64px keras tensorflow: ParamMismatch: cnn: ..."]
    assert targets(result)["peer models have our trainable params"]["met"] is False


def test_targets_are_issue_16s():
    from sweep.bench.runner import targets

    result = {"shap": {"ratio": 1.1}, "ray": {"overhead_per_trial_s": 3.5, "overhead_per_trial_excluding_init_s": 1.9},
              "ratios": {"cnn_train_vs_keras_tensorflow": 0.9}, "conv_layers": {"models": {}}}
    out = targets(result)
    assert set(out) == {"shap.ratio <= 1.25", "ray.overhead_per_trial_excluding_init_s <= 2.0",
                        "ray.overhead_per_trial_s <= 3.0", "resnet50v2_train_vs_keras_tensorflow >= 1.2",
                        "resnet50v2_eval_vs_keras_tensorflow >= 1.2", "cnn_train_vs_keras_tensorflow >= 1.0",
                        "cnn_eval_vs_keras_tensorflow >= 1.0", "seeds section present", "conv_layers section present"}
    assert out["shap.ratio <= 1.25"]["met"] and out["ray.overhead_per_trial_excluding_init_s <= 2.0"]["met"]
    assert out["ray.overhead_per_trial_s <= 3.0"]["met"] is False
    assert out["cnn_train_vs_keras_tensorflow >= 1.0"] == {"value": 0.9, "met": False}
    assert out["resnet50v2_eval_vs_keras_tensorflow >= 1.2"] == {"value": None, "met": None}
    assert out["conv_layers section present"]["met"] and not out["seeds section present"]["met"]


def test_pipeline_targets_compare_each_size_with_its_fastest_model():
    from sweep.bench.runner import targets

    result = {"models": [{"model": "cnn", "image_size": 64, "train": {"images_per_s": 100.0}},
                         {"model": "fusion", "image_size": 64, "train": {"images_per_s": 300.0}},
                         {"model": "cnn", "image_size": 128, "train": {"images_per_s": 50.0}}],
              "pipeline": {"by_size": {"64": {"images_per_s": 2400.0}, "128": {"images_per_s": 1800.0}}}}
    checks = targets(result)
    assert checks["pipeline_vs_fastest_model_64px >= 10"] == {"value": 8.0, "met": False}
    assert checks["pipeline_vs_fastest_model_128px >= 10"] == {"value": 36.0, "met": True}
    assert checks["pipeline_128px_images_per_s >= 2000"] == {"value": 1800.0, "met": False}


def test_gpu_path_modules_do_not_import_ray_shap_tfds_grain_or_cv2():
    """The GPU machine has only jax, flax, optax and orbax: the bench's GPU path, the models and the engine's jitted
    steps (with to_model_input), checkpoints and metrics import without the data pipeline's packages."""
    code = ("import sys, sweep.commands.bench, sweep.bench.runner, sweep.bench.steps, sweep.bench.peak, "
            "sweep.bench.pipeline, sweep.bench.peer, sweep.bench.report, sweep.engine.steps, "
            "sweep.engine.checkpoint, sweep.engine.metrics, sweep.engine.run_outputs, models.registry, "
            "data.model_input, data.spec; "
            "bad = [m for m in ('ray', 'shap', 'tensorflow_datasets', 'tensorflow', 'grain', 'cv2') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_seeds_section_compares_vmapped_and_sequential_seeds_of_one_configuration():
    from models.spec import FusionSpec
    from sweep.bench.seeds import seeds_speed

    spec = FusionSpec(cnn_cut="block1_drop", resnet_cut=None, branch_width=4, head_width=8)
    result = seeds_speed(spec=spec, image_size=16, batch_size=2, seeds=2, windows=2, window_s=0.01)
    assert result["seeds"] == 2 and result["vmap_images_per_s"] > 0 and result["sequential_images_per_s"] > 0
    assert len(result["vmap"]["windows_s"]) == len(result["sequential"]["windows_s"]) == 2
    assert "seeds" in table({"seeds": result})


@pytest.mark.slow
def test_ray_section_measures_the_sweeps_worker_reuse_and_fresh_workers():
    from sweep.bench.ray_overhead import ray_overhead

    result = ray_overhead(2, steps=6)
    assert result["errors"] == 0 and result["fresh_process"]["errors"] == 0 and result["reuse_actors"] is True
    for figures in (result, result["fresh_process"]):
        assert figures["ray_s"] > figures["ray_init_s"] > 0


@pytest.mark.slow
def test_checkpoint_traffic_of_a_sweep_trial_is_at_most_three_states_per_checkpoint():
    """The bench's checkpoints section on the CNN at 32 px (its smallest size): what a trial's process writes per checkpoint taken (its
    own checkpoint and Ray's copy) is between one and three of its states (weights + optimiser state)."""
    from sweep.bench.checkpoints import checkpoint_traffic

    result = checkpoint_traffic(32, epochs=4, models=("cnn",))
    assert not result["errors"] and result["checkpoints_per_trial"] == 2  # epochs 3 and 4 (the end)
    (row,) = result["models"]
    assert row["state_bytes"] == row["weights_bytes"] + row["optimizer_bytes"] > 0
    assert 1.0 <= row["states_per_checkpoint"] <= 3.0, row


def test_bench_autotune_rebuilds_the_table_for_the_bench_programs_and_prints_it(monkeypatch, capsys):
    from sweep.cli import main
    from sweep.engine import autotune

    seen = {}
    signature = {"cpu_vendor": "V", "cpu_family": "1", "cpu_model_number": "2", "cpu_stepping": "3",
                 "isa_flags": ["avx2"], "usable_cores": 2, "jaxlib": "x"}

    def fake_ensure(programs, *, budget_s, rebuild, log):
        seen.update(keys=[p.key for p in programs], rebuild=rebuild, budget_s=budget_s)
        table = autotune._new_table(signature)
        table["layers"]["train"]["b2_8x8x4_k3x3x4x4_s1_SAME_float32"] = {"form": "im2col", "seconds": {"xla": 2e-3,
                                                                                                       "im2col": 1e-3}}
        return table

    monkeypatch.setattr(autotune, "ensure_table", fake_ensure)
    monkeypatch.delenv("FUSION_SWEEP_AUTOTUNE", raising=False)
    assert main(["bench", "--autotune", "--models", "cnn", "--sizes", "32,48", "--batch-sizes", "2"]) == 0
    assert seen == {"keys": ["cnn@32px_b2_float32", "cnn@48px_b2_float32"], "rebuild": True, "budget_s": 60.0}
    out = capsys.readouterr().out
    assert "b2_8x8x4_k3x3x4x4_s1_SAME_float32" in out and "im2col" in out and "family 1 model 2" in out


def test_peer_models_may_name_other_backbones_which_are_then_measured_here_too(monkeypatch):
    """`bench --peer-models xception,mobilenetv2`: both are timed here (the seed's head) beside the seed's models,
    so their ratios to the Keras peer exist; an unknown name is refused before any work."""
    import sweep.bench.runner as runner
    from sweep.cli import main

    seen = {}

    class Stop(Exception):
        pass

    def capture(options, **_):
        seen["options"] = options
        raise Stop

    monkeypatch.setattr(runner, "run_bench", capture)
    with pytest.raises(Stop):
        main(["bench", "--peer-models", "xception,mobilenetv2", "--models", "cnn"])
    assert seen["options"].models == ("cnn", "xception", "mobilenetv2")
    assert seen["options"].peer_models == ("xception", "mobilenetv2")
    assert main(["bench", "--peer-models", "vgg16"]) == 2 and "options" in seen


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_keras_peer_builds_another_backbone_with_our_trainable_params(monkeypatch):
    import flax.nnx as nnx
    import numpy as np

    monkeypatch.setenv("KERAS_BACKEND", "jax")  # read at Keras's first import only
    pytest.importorskip("keras")
    from models.profile import count_params
    from sweep.bench.keras_peer import build
    from sweep.bench.steps import build_bench_model

    ours = nnx.eval_shape(lambda: build_bench_model("mobilenetv2", 32))
    theirs = build("mobilenetv2", 32)
    trainable = sum(int(np.prod(w.shape)) for w in theirs.trainable_weights)
    assert trainable == count_params(ours)[1]
