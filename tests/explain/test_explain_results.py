"""explain_results end to end on two tiny trained trials: outputs, no-work failures, and the CLI."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from data.spec import DataSpec, PipelineSpec
from models.spec import FusionSpec
from sweep.explain import runner
from sweep.cli import main
from sweep.configs.schema import TrainConfig

pytestmark = pytest.mark.slow  # trains two tiny models for one epoch each


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    from sweep.engine.train import train_and_evaluate

    root = tmp_path_factory.mktemp("sweep")
    data = DataSpec(source="synthetic", image_size=32, num_images=80, marker_rate=(0.9, 0.1))
    base = TrainConfig(model="fusion", data=data, pipeline=PipelineSpec(channels=1, augment="none"), epochs=1,
                       batch_size=16, early_stopping=None,
                       fusion=FusionSpec(cnn_cut="block2_drop", resnet_cut=None, branch_width=8, head_width=8))
    rows = []
    for trial_id, seed in (("t0", 0), ("t1", 1)):
        train_and_evaluate(base.replace(seed=seed), out_dir=root / "trials" / trial_id)
        rows.append(f"{trial_id},completed,{'fusion' if seed else 'cnn'}")
    (root / "trials.csv").write_text("trial_id,status,model\n" + "\n".join(rows) + "\n")
    (root / "pareto.csv").write_text("trial_id\nt1\n")
    return root


def test_explain_results_writes_tables_maps_overlays_and_section(sweep_dir):
    summary = runner.explain_results(sweep_dir, images=2, max_evals=40, masker="blur(8,8)", batch_size=16)
    out = sweep_dir / "explanations"
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["trial_id"] for r in rows] == ["t1", "t1", "t0", "t0"]  # pareto first, then parents
    assert list(rows[0])[:13] == ["trial_id", "image_id", "label", "pred", "prob", "evals", "seconds",
                                  "border_share", "marker_share", "lesion_share", "lung_share", "pointing_hit",
                                  "nan_map"]
    assert {r["label"] for r in rows} == {"0", "1"}  # class-balanced sample
    assert all(0 < int(r["evals"]) <= 40 for r in rows)
    assert rows[0]["image_id"] == rows[2]["image_id"]  # the same images for every model
    with open(out / "agreement.csv") as f:
        agreement = list(csv.DictReader(f))
    assert len(agreement) == 2 and {a["trial_a"] for a in agreement} == {"t1"}
    maps = sorted((out / "t0").glob("*.npz"))
    assert len(maps) == 2 and np.load(maps[0])["values"].dtype == np.float16
    assert np.load(maps[0])["values"].shape == (32, 32)
    assert len(list((out / "t0").glob("*.png"))) == 2 and (out / "grid.png").is_file()  # synthetic data only
    image = np.load(out / "images" / f"{rows[0]['image_id']}.npz")  # what report.html's browser draws
    assert image["image"].shape == image["lesion_mask"].shape == (32, 32) and image["marker_box"].shape == (4,)
    with open(out / "models.csv") as f:
        models = list(csv.DictReader(f))
    assert [m["trial_id"] for m in models] == ["t1", "t0"] and models[0]["n_images"] == "2"
    assert {"border_share", "border_share_lo", "border_share_hi", "border_share_reference", "flag"} <= set(models[0])
    with open(out / "images.csv") as f:  # the sample, chosen once for the sweep
        assert [r["image_id"] for r in csv.DictReader(f)] == [rows[0]["image_id"], rows[1]["image_id"]]
    section = (out / "section.md").read_text()
    assert section == summary.section and section.startswith("## Explanations")
    assert "![" in section and "explanations/grid.png" in section


def test_cli_fails_before_work_on_bad_input(sweep_dir, capsys):
    assert main(["explain", str(sweep_dir), "--masker", "sharpen"]) == 2
    assert "blur(k,k), inpaint_telea, inpaint_ns" in capsys.readouterr().err
    assert main(["explain", str(sweep_dir), "--trials", "t0,t9"]) == 2
    assert "t9: no run dir" in capsys.readouterr().err
    assert main(["explain", str(sweep_dir), "--images", "10000", "--max-evals", "10"]) == 2
    assert "test split has only" in capsys.readouterr().err


def test_cli_explains_chosen_trials(sweep_dir, capsys):
    assert main(["explain", str(sweep_dir), "--trials", "t0", "--images", "2", "--max-evals", "20",
                 "--masker", "inpaint_telea", "--class", "pred", "--batch-size", "8"]) == 0
    assert "## Explanations" in capsys.readouterr().out
