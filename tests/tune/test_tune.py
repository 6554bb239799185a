"""Tune plumbing without starting Ray: scheduler choice, core claiming, picklable progress, a row per seed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweep.configs.presets import get_preset
from sweep.tune.driver import make_scheduler
from sweep.tune.progress import Progress
from sweep.tune.rows import rows_of_trial

REPO = Path(__file__).resolve().parents[2]


def test_asha_watches_val_accuracy_with_a_grace_period():
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    sweep = get_preset("quick").replace(scheduler="asha")
    sweep = sweep.replace(train=sweep.train.replace(epochs=9))
    scheduler = make_scheduler(sweep)
    assert isinstance(scheduler, ASHAScheduler)
    assert scheduler._metric == "val_accuracy" and scheduler._mode == "max" and scheduler._max_t == 9
    assert min(rung[0] for rung in scheduler._brackets[0]._rungs) == 3  # the first rung: the grace period
    assert isinstance(make_scheduler(sweep.replace(scheduler="fifo")), FIFOScheduler)


def test_progress_callback_survives_pickling():
    import ray.cloudpickle as pickle

    progress = Progress(3, on_complete=lambda trial: None)
    restored = pickle.loads(pickle.dumps(progress.callback()))
    assert restored is not None  # Ray stores RunConfig callbacks in its experiment state


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_concurrent_trials_claim_different_cores(tmp_path):
    code = ("import sys, time; from sweep.tune.trial import claim_cores; print(claim_cores(1), flush=True); "
            "sys.stdin.readline()")
    env = dict(os.environ, FUSION_SWEEP_CORE_LOCKS=str(tmp_path), PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=env, cwd=REPO) for _ in range(2)]
    try:
        cores = [p.stdout.readline().strip() for p in procs]
    finally:
        for p in procs:
            p.communicate("\n", timeout=30)
    assert cores[0] != cores[1], cores


TRIAL = {"model": "fusion", "cnn_cut": "block1_drop", "resnet_cut": None, "branch_width": 16, "head_width": 16,
         "seeds": [0, 1]}


def test_a_trial_stopped_by_the_scheduler_keeps_a_row_per_seed_with_its_validation_accuracy():
    last_epoch_report = {"epoch": 2, "final": False, "val_accuracy": 0.65, "seeds": {
        "0": {"epoch": 2, "train_status": "training", "val_accuracy": 0.6, "selected_val_accuracy": 0.7,
              "best_epoch": 1},
        "1": {"epoch": 2, "train_status": "early_stopped", "val_accuracy": 0.5, "selected_val_accuracy": 0.6,
              "best_epoch": 1}}}
    rows = rows_of_trial("t1", "TERMINATED", {"trial": TRIAL}, last_epoch_report)
    assert [r["trial_id"] for r in rows] == ["t1-s0", "t1-s1"] and [r["seed"] for r in rows] == [0, 1]
    assert [r["train_status"] for r in rows] == ["stopped_by_scheduler", "early_stopped"]
    assert rows[0]["val_accuracy"] == 0.7 and rows[0]["epochs"] == 2 and rows[0]["best_epoch"] == 1
    assert "test_accuracy" not in rows[0] and "seeds" not in rows[0]


def test_a_finished_trial_gives_each_seed_its_own_row_and_metrics():
    final = {"final": True, "epoch": 3, "test_accuracy": 0.8, "node_id": "n1", "seeds": {
        "0": {"trial_id": "t1-s0", "train_status": "completed", "test_accuracy": 0.9, "test_n": 40,
              "collapsed": False, "epochs_run": 3, "weights_epoch": 3, "test_recall_COVID": 1.0},
        "1": {"trial_id": "t1-s1", "train_status": "diverged", "epochs_run": 1}}}
    first, second = rows_of_trial("t1", "TERMINATED", {"trial": TRIAL}, final)
    assert (first["trial_id"], first["test_accuracy"], first["test_n"], first["collapsed"]) == ("t1-s0", 0.9, 40, False)
    assert first["epochs"] == 3 and first["recall_COVID"] == 1.0 and first["node_id"] == "n1"
    assert second["train_status"] == "diverged" and "test_accuracy" not in second


def test_a_trial_that_failed_before_reporting_keeps_its_id_and_error_on_every_seed():
    rows = rows_of_trial("t9", "ERROR", {"trial": TRIAL}, None, error="ValueError: boom")
    assert [(r["trial_id"], r["train_status"], r["error"]) for r in rows] == [
        ("t9-s0", "error", "ValueError: boom"), ("t9-s1", "error", "ValueError: boom")]


def test_an_epoch_report_averages_the_seeds_that_did_not_diverge_and_carries_every_seeds_checkpoint(tmp_path,
                                                                                                   monkeypatch):
    from sweep.tune import trial as trial_module

    heard = []

    def report(metrics, checkpoint=None):
        heard.append((metrics, sorted(p.relative_to(checkpoint.path).as_posix()
                                      for p in Path(checkpoint.path).rglob("*") if p.is_file())))

    monkeypatch.setattr(trial_module.tune, "report", report)
    monkeypatch.setattr(trial_module, "ray_node_id", lambda: "node-1")
    run_dirs = {seed: tmp_path / f"abc-s{seed}" for seed in (0, 1, 2)}
    for seed, folder in run_dirs.items():
        (folder / "checkpoints" / "2").mkdir(parents=True)
        (folder / "checkpoints" / "2" / "arrays").write_text(str(seed))
    summaries = {0: {"train_status": "training", "selected_val_accuracy": 0.8, "val_accuracy": 0.7, "epoch": 2},
                 1: {"train_status": "early_stopped", "selected_val_accuracy": 0.6, "val_accuracy": 0.5, "epoch": 2},
                 2: {"train_status": "diverged", "selected_val_accuracy": 0.9, "epoch": 1}}
    trial_module.report_epoch(2, summaries, run_dirs, "abc")
    (metrics, files), = heard
    assert metrics["val_accuracy"] == pytest.approx(0.7) and metrics["epoch"] == 2 and metrics["seeds_training"] == 1
    assert metrics["seeds"]["1"]["trial_id"] == "abc-s1" and metrics["seeds"]["2"]["train_status"] == "diverged"
    assert files == [f"s{seed}/checkpoints/2/arrays" for seed in (0, 1, 2)]
