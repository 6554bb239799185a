"""TensorBoard event files per row that `tensorboard --logdir RESULTS` finds, and one MLflow run per row
(configuration x seed) with params, per-epoch and final metrics and the row's small files."""
from __future__ import annotations

import json

import pandas as pd

from sweep.tune.mlflow_log import ROW_TAG, log_sweep
from sweep.tune.tensorboard_log import open_row_board


def test_tensorboard_finds_every_rows_event_files_under_the_results_folder(tmp_path):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    for row_id in ("a1-s0", "a1-s1"):
        board = open_row_board(tmp_path / "trials" / row_id, f"cnn seed {row_id[-1]}")
        for epoch in (1, 2):
            board.step(epoch * 10, {"loss": 0.5 / epoch, "accuracy": 0.6})
            board.epoch(epoch, {"loss": 0.5 / epoch, "val_accuracy": 0.5 + epoch / 10, "images_per_second": 100.0})
        board.final(2, {"test_accuracy": 0.8, "ext_site_b_accuracy": 0.7, "params": 5})
        board.close()
    tensorboard = EventMultiplexer()  # what `tensorboard --logdir RESULTS` does
    tensorboard.AddRunsFromDirectory(str(tmp_path))
    tensorboard.Reload()
    runs = tensorboard.Runs()
    assert set(runs) == {"trials/a1-s0", "trials/a1-s1"}
    tags = runs["trials/a1-s0"]["scalars"]
    assert {"epoch/val_accuracy", "step/loss", "final/test_accuracy", "final/ext_site_b_accuracy"} <= set(tags)
    assert "final/params" not in tags
    values = [e.value for e in tensorboard.Scalars("trials/a1-s1", "epoch/val_accuracy")]
    assert [round(v, 3) for v in values] == [0.6, 0.7]


def _results_folder(root):
    rows = []
    for index, seed in enumerate((0, 1, 0)):
        row = {"trial_id": f"r{index}", "model": "fusion", "cnn_cut": "block2_drop", "resnet_cut": "none",
               "branch_width": 16, "head_width": 16, "seed": seed, "params": 1000 + index, "test_accuracy": 0.7,
               "ext_site_b_accuracy": 0.6, "status": "TERMINATED", "train_status": "completed", "epochs": 2,
               "label": "cnn:block2_drop/b16/h16"}
        rows.append(row)
        folder = root / "trials" / row["trial_id"]
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "weights.bin").write_bytes(b"0" * 10)
        (folder / "config.json").write_text(json.dumps({"model": "fusion", "optim": {"lr": 0.001}, "seed": seed}))
        (folder / "metrics.json").write_text(json.dumps({"test_accuracy": 0.7}))
        pd.DataFrame({"epoch": [1, 2], "loss": [0.7, 0.5], "val_accuracy": [0.6, 0.65]}).to_csv(
            folder / "history.csv", index=False)
    return rows


def test_mlflow_records_one_run_per_row_with_config_metrics_and_small_files(tmp_path):
    from mlflow.tracking import MlflowClient

    rows = _results_folder(tmp_path / "results")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert log_sweep(tmp_path / "results", uri, experiment="quick", rows=rows, say=lambda _: None) == 3
    assert log_sweep(tmp_path / "results", uri, experiment="quick", rows=rows, say=lambda _: None) == 0  # resumed
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("quick")
    runs = {r.data.tags[ROW_TAG]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"r0", "r1", "r2"}
    run = runs["r1"]
    assert run.info.run_name == "cnn:block2_drop/b16/h16 seed 1" and run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.001" and run.data.params["cnn_cut"] == "block2_drop"
    assert run.data.metrics["test_accuracy"] == 0.7 and run.data.metrics["ext_site_b_accuracy"] == 0.6
    history = client.get_metric_history(run.info.run_id, "epoch_val_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.6), (2, 0.65)]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"config.json", "metrics.json", "history.csv"}  # never the checkpoints
    assert (tmp_path / "mlartifacts").is_dir()  # beside the database, not in the current folder
