"""`fusion-sweep report` rebuilds pareto.csv, plots and report.md from a trials table alone."""
from __future__ import annotations

import json

import numpy as np

from sweep.files import write_json_atomic
from sweep.tune.results import read_trials, trial_row, trials_frame, write_trials


def _fake_results(tmp_path):
    rows, rng = [], np.random.default_rng(0)
    cuts = ["block1_drop", "block2_drop", "block3_drop", "block4_drop", "block5_drop"]
    for seed in range(2):
        for i, cut in enumerate(cuts):
            params = 10 ** (4 + i)
            trial = {"model": "fusion", "cnn_cut": cut, "resnet_cut": None, "branch_width": 16, "head_width": 64,
                     "seed": seed}
            metrics = {"params": params, "flops": 3 * params, "latency_ms": 0.1 * (i + 1), "epochs_run": 2,
                       "test_accuracy": 0.95 - 0.3 * params ** -0.2 + rng.normal(0, 0.005), "val_accuracy": 0.8,
                       "test_recall_COVID": 0.9, "test_precision_COVID": 0.8, "classes": ["COVID", "Normal"],
                       "test_n": 200}
            rows.append(trial_row(f"t{seed}{i}", "TERMINATED", trial, metrics))
        for model, params in (("cnn", 2e6), ("resnet50v2", 3e7)):
            rows.append(trial_row(f"p{model}{seed}", "TERMINATED", {"model": model, "seed": seed, "head_width": 2048},
                                  {"params": params, "flops": params, "latency_ms": 1.0, "test_accuracy": 0.9,
                                   "test_n": 200}))
    write_trials(trials_frame(rows), tmp_path)
    write_json_atomic(tmp_path / "manifest.json", {"sweep_config": {"name": "fake", "seeds": 2, "train": {
        "epochs": 2, "data": {"source": "synthetic", "image_size": 32, "classes": ["COVID", "Normal"]}}}})


def test_trials_table_has_the_contract_columns(tmp_path):
    _fake_results(tmp_path)
    frame = read_trials(tmp_path)
    for column in ("trial_id", "status", "model", "cnn_cut", "resnet_cut", "branch_width", "head_width", "seed",
                   "params", "flops", "latency_ms", "epochs", "test_accuracy", "recall_COVID", "precision_COVID"):
        assert column in frame.columns
    assert frame["cnn_cut"].isna().sum() == 4  # parents have no cut
    assert (tmp_path / "trials.csv").read_text().startswith("trial_id,status,model,cnn_cut")


def test_report_command_rebuilds_everything(tmp_path, capsys):
    from sweep.cli import main

    _fake_results(tmp_path)
    assert main(["report", str(tmp_path), "--bootstrap", "100"]) == 0
    for name in ("pareto.csv", "report.md", "scaling.json", "plots/accuracy_vs_params.png",
                 "plots/accuracy_vs_flops.png", "plots/accuracy_vs_latency.png"):
        assert (tmp_path / name).is_file(), name
    report = (tmp_path / "report.md").read_text()
    scaling = json.loads((tmp_path / "scaling.json").read_text())
    verdict = scaling["test"]["params"]["verdict_text"]
    answer = report.index("## The answer")
    assert report.index(verdict) > answer and report.index("not distinguishable from the best") > answer
    assert report.index("## Accuracy against size") > report.index("not distinguishable from the best")
    assert set(scaling["test"]) == {"params", "flops", "latency_ms"} and "head share" in report
    assert "Pareto front" not in report and "pfusion" not in (tmp_path / "pareto.csv").read_text()
    assert verdict in capsys.readouterr().out
    (tmp_path / "explanations").mkdir()
    (tmp_path / "explanations" / "section.md").write_text("## Explanations\n\nmarker text\n")
    assert main(["report", str(tmp_path), "--bootstrap", "100"]) == 0
    assert "marker text" in (tmp_path / "report.md").read_text()


def test_report_lists_collapsed_trials_and_leaves_them_out(tmp_path):
    from sweep.analysis.report import build_report
    from sweep.analysis.simulate import Design, Truth, simulate_sweep, write_sweep

    trials, predictions = simulate_sweep(Truth("constant"), Design(collapsed=(2, 2)), np.random.default_rng(2))
    write_sweep(tmp_path, trials, predictions)
    build_report(tmp_path, bootstrap=100)
    shares = predictions.groupby("trial_id")["pred"].agg(lambda p: p.value_counts(normalize=True).iloc[0])
    report = (tmp_path / "report.md").read_text()
    section = report[report.index("### Collapsed trials"):report.index("## Accuracy against size")]
    assert sorted(shares[shares > 0.98].index) == sorted(t for t in trials["trial_id"] if f"`{t}`" in section)
    scaling = json.loads((tmp_path / "scaling.json").read_text())["test"]["params"]
    assert scaling["n_collapsed"] == 2 and scaling["n_trials"] == len(trials) - 2


def test_report_of_a_missing_folder_says_what_is_wrong(tmp_path, capsys):
    from sweep.cli import main

    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no trials.csv" in capsys.readouterr().err
