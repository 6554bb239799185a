"""The `paper` preset runs end to end (Ray trials, analysis, explanations) on CPU: the real development set cut to
a tiny subset at 32 px, its GPU resources overridden, one sampled configuration, one seed, one epoch."""
from __future__ import annotations

import csv
import json

import pytest

from sweep.cli import main


@pytest.mark.slow
@pytest.mark.real_data
def test_paper_preset_runs_end_to_end_on_cpu(real_dev_dir, tmp_path):
    out = tmp_path / "paper"
    code = main(["run", "--preset", "paper", "--data-dir", str(real_dev_dir), "--image-size", "32", "--subset", "12",
                 "--epochs", "1", "--num-samples", "1", "--seeds", "1", "--cpus-per-trial", "1",
                 "--gpus-per-trial", "0", "--explain-images", "2", "--explain-max-evals", "20", "--out", str(out),
                 "--init", "resnet50v2=scratch"])  # the preset's imagenet file is not on this machine
    assert code == 0
    with open(out / "trials.csv", newline="") as f:
        trials = list(csv.DictReader(f))
    # one sampled fusion, the seed's fusion and both parents, each trained and tested
    assert sorted(t["model"] for t in trials) == ["cnn", "fusion", "fusion", "resnet50v2"]
    assert all(t["test_accuracy"] not in ("", "nan") for t in trials)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sweep_config"]["name"] == "paper" and manifest["sweep_config"]["gpus_per_trial"] == 0
    assert manifest["init"]["resnet50v2"]["source"] == "scratch"
    assert {t["init_resnet50v2"] for t in trials if t["model"] == "resnet50v2"} == {"scratch"}
    assert (out / "report.md").is_file() and (out / "explanations" / "summary.csv").is_file()
