"""The bench sections no other test runs (compile cache, params vs FLOPs, SHAP's cost), each at a tiny size: they
run end to end, report what the bench table and its markdown read, and the FLOPs story agrees with XLA."""
from __future__ import annotations

import flax.nnx as nnx
import pytest

from models.profile import count_params, forward_flops
from models.registry import MODEL_NAMES
from sweep.bench.report import markdown, table


def tiny_model(name, image_size):
    """A small fusion in place of a seed model: the section's code path in seconds."""
    from models.registry import build_model
    from models.spec import FusionSpec

    spec = FusionSpec(cnn_cut="block1_drop", resnet_cut=None, branch_width=4, head_width=8, image_size=image_size)
    return build_model(spec, num_classes=2, image_size=image_size, rngs=nnx.Rngs(0))


def test_compile_section_traces_and_compiles_one_train_step(monkeypatch, tmp_path):
    from sweep.bench import compile as compile_section

    monkeypatch.setattr(compile_section, "build_bench_model", tiny_model)
    monkeypatch.setattr(compile_section, "enable_compilation_cache", lambda cache_dir: None)  # the test's process
    figures = compile_section.compile_once("fusion", 16, 2, str(tmp_path))
    assert figures["trace_s"] > 0 and figures["compile_s"] > 0


@pytest.mark.slow
def test_compile_section_compiles_in_two_fresh_processes_sharing_one_cache():
    from sweep.bench.compile import compile_cache_check

    result = compile_cache_check("cnn", 32, 2, timeout=120)
    assert (result["model"], result["image_size"], result["batch_size"]) == ("cnn", 32, 2)
    for run in (result["cold"], result["cached"]):  # each child handed back its own figures
        assert run["compile_s"] > 0 and run["trace_s"] > 0 and run["process_wall_s"] > run["compile_s"]
    assert "compile from cache" in table({"compile_cache": result})


def test_the_per_pixel_dense_of_the_flops_story_costs_what_xla_counts():
    from sweep.bench.flops_story import per_pixel_dense

    story = per_pixel_dense(4, 5, 64, 8)
    dense = nnx.Linear(64, 8, rngs=nnx.Rngs(0))
    assert story["params"] == count_params(dense).total
    # XLA also counts the bias adds (1 / (2 x 64) more): the story leaves them out
    assert story["forward_flops"] == pytest.approx(forward_flops(dense, (1, 4, 5, 64)), rel=0.01)
    assert story["output_floats_per_image"] == 4 * 5 * 8


def test_flops_section_reports_a_model_into_the_bench_markdown(monkeypatch):
    from sweep.bench import flops_story

    monkeypatch.setattr(flops_story, "MODEL_NAMES", ("cnn",))  # the CNN alone: seconds, not a minute
    story = flops_story.seed_flops_vs_params(32)
    assert list(story["models"]) == ["cnn"] and story["models"]["cnn"]["forward_flops_per_image"] > 0
    assert "| cnn |" in markdown({"flops_vs_params": story})


@pytest.mark.slow
def test_flops_section_reports_every_seed_model_and_the_fusions_branches():
    from sweep.bench.flops_story import seed_flops_vs_params

    story = seed_flops_vs_params(32)
    assert set(story["models"]) == set(MODEL_NAMES)
    assert all(m["params"] > 0 and m["forward_flops_per_image"] > 0 for m in story["models"].values())
    assert 0 < story["fusion_branches"]["share_of_fusion_forward_flops"] < 1


def test_shap_section_explains_and_times_a_model(monkeypatch):
    from sweep.bench import explain_cost

    monkeypatch.setattr(explain_cost, "build_bench_model", tiny_model)
    result = explain_cost.shap_cost("fusion", 16, images=2, max_evals=10, batch_size=4, windows=1)
    assert (result["model"], result["image_size"], result["images"], result["windows"]) == ("fusion", 16, 2, 1)
    assert result["evals"] >= 2 and result["ratio"] > 0
    assert "shap" in table({"shap": result})
