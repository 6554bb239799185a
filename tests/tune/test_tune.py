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
from sweep.tune.rows import rows_of_ended, rows_of_trial

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

    progress = Progress(3, on_complete=lambda trial, status: None)
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


class FakeTrial:
    """What rows.rows_of_ended reads of Ray's Trial."""

    def __init__(self, status, last_result, error=None, trial_id="abc12_00001", failures=0):
        self.trial_id, self.status, self.last_result, self.num_failures = trial_id, status, last_result, failures
        self.config = {"trial": {"model": "fusion", "cnn_cut": "block1_drop", "resnet_cut": None,
                                 "branch_width": 16, "head_width": 16, "seeds": [0]}}
        self._error = error

    def get_error(self):
        return self._error


def test_a_trial_stopped_by_the_scheduler_keeps_the_validation_of_the_weights_it_would_be_scored_with():
    seed = {"val_accuracy": 0.6, "selected_val_accuracy": 0.7, "selected_val_loss": 0.5, "best_epoch": 1,
            "selected_epoch": 1, "epoch": 2, "loss": 0.3, "checkpointed": True, "train_status": "training"}
    last = {"epoch": 2, "final": False, "val_accuracy": 0.7, "checkpointed": True, "seeds": {"0": seed}}
    (row,) = rows_of_ended(FakeTrial("TERMINATED", last))
    assert row["train_status"] == "stopped_by_scheduler" and row["status"] == "TERMINATED"
    assert row["val_accuracy"] == 0.7 and row["val_loss"] == 0.5 and row["weights_epoch"] == 1
    assert row["epochs"] == 2 and "test_accuracy" not in row and "checkpointed" not in row


def test_a_finished_trial_keeps_its_train_status_and_a_failed_one_its_real_id_and_message():
    seed = {"train_status": "early_stopped", "epochs_run": 4, "test_accuracy": 0.8, "weights_epoch": 2}
    (done,) = rows_of_ended(FakeTrial("TERMINATED", {"final": True, "epoch": 4, "seeds": {"0": seed}}))
    assert done["train_status"] == "early_stopped" and done["epochs"] == 4 and done["test_accuracy"] == 0.8
    trace = "Traceback (most recent call last):\n  File ...\nsweep.UsageError: unknown model 'x'; choose one of: cnn\n"
    (failed,) = rows_of_ended(FakeTrial("ERROR", {}, error=trace, trial_id="abc12_00007", failures=2))
    assert failed["trial_id"] == "abc12_00007-s0" and failed["status"] == "ERROR" and failed["train_status"] == "error"
    assert failed["message"] == "sweep.UsageError: unknown model 'x'; choose one of: cnn" and failed["failures"] == 2
    assert rows_of_ended(FakeTrial("RUNNING", {"epoch": 1})) == []  # an interrupted sweep's unfinished trial


def test_trials_checkpoint_where_rays_hyperband_pauses_them():
    """scheduler_epochs must list every rung of every HyperBand bracket Ray builds (there it may pause a trial)."""
    from ray.tune.schedulers import HyperBandScheduler

    from sweep.tune.driver import REDUCTION_FACTOR, scheduler_epochs

    for epochs in (3, 9, 10, 27, 50):
        sweep = get_preset("quick").replace(scheduler="hyperband")
        sweep = sweep.replace(train=sweep.train.replace(epochs=epochs))
        scheduler = make_scheduler(sweep)
        assert isinstance(scheduler, HyperBandScheduler)
        rungs = set()
        for s in range(scheduler._s_max_1):  # Ray's own bracket sizes
            rung = scheduler._get_r0(s)
            while 0 < rung < epochs:
                rungs.add(rung)
                rung = int(min(rung * REDUCTION_FACTOR, epochs))
        assert scheduler_epochs(sweep) == sorted(rungs), epochs
        assert scheduler_epochs(sweep.replace(scheduler="fifo")) == []


def test_trials_checkpoint_where_rays_asha_may_stop_them():
    """scheduler_epochs lists ASHA's rungs as Ray builds them (there it stops trials; --score-stopped scores the
    checkpoint taken there)."""
    from sweep.tune.driver import scheduler_epochs

    for epochs in (3, 9, 10, 27):
        sweep = get_preset("quick").replace(scheduler="asha")
        sweep = sweep.replace(train=sweep.train.replace(epochs=epochs))
        scheduler = make_scheduler(sweep)
        (bracket,) = scheduler._brackets
        assert scheduler_epochs(sweep) == sorted(milestone for milestone, _ in bracket._rungs if milestone < epochs)


def test_a_trial_checkpoints_every_n_epochs_and_where_it_may_be_paused():
    from sweep.tune.trial import checkpoint_schedule

    due = checkpoint_schedule({"checkpoint_every": 3, "checkpoint_epochs": [1, 4]})
    assert [epoch for epoch in range(1, 10) if due(epoch)] == [1, 3, 4, 6, 9]


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
    assert [(r["trial_id"], r["train_status"], r["message"]) for r in rows] == [
        ("t9-s0", "error", "ValueError: boom"), ("t9-s1", "error", "ValueError: boom")]


def test_an_epoch_report_averages_the_seeds_that_did_not_diverge_and_carries_checkpoints_only_when_written(
        tmp_path, monkeypatch):
    from sweep.tune import trial as trial_module

    heard = []

    def report(metrics, checkpoint=None):
        heard.append((metrics, None if checkpoint is None else sorted(
            p.relative_to(checkpoint.path).as_posix() for p in Path(checkpoint.path).rglob("*") if p.is_file())))

    monkeypatch.setattr(trial_module.tune, "report", report)
    monkeypatch.setattr(trial_module, "ray_node_id", lambda: "node-1")
    run_dirs = {seed: tmp_path / f"abc-s{seed}" for seed in (0, 1, 2)}
    for seed, folder in run_dirs.items():
        (folder / "checkpoints" / "2").mkdir(parents=True)
        (folder / "checkpoints" / "2" / "arrays").write_text(str(seed))
    summaries = {0: {"train_status": "training", "selected_val_accuracy": 0.8, "val_accuracy": 0.7, "epoch": 2,
                     "checkpointed": True},
                 1: {"train_status": "early_stopped", "selected_val_accuracy": 0.6, "val_accuracy": 0.5, "epoch": 2,
                     "checkpointed": True},
                 2: {"train_status": "diverged", "selected_val_accuracy": 0.9, "epoch": 1}}
    trial_module.report_epoch(2, summaries, run_dirs, "abc")
    (metrics, files), = heard
    assert metrics["val_accuracy"] == pytest.approx(0.7) and metrics["epoch"] == 2 and metrics["seeds_training"] == 1
    assert metrics["seeds"]["1"]["trial_id"] == "abc-s1" and metrics["seeds"]["2"]["train_status"] == "diverged"
    assert files == [f"s{seed}/checkpoints/2/arrays" for seed in (0, 1, 2)]
    summaries[0]["checkpointed"] = summaries[1]["checkpointed"] = False  # an epoch between checkpoints
    trial_module.report_epoch(3, summaries, run_dirs, "abc")
    assert heard[-1][0]["epoch"] == 3 and heard[-1][1] is None
    summaries[0]["train_status"] = "completed"  # the group's last epoch: the final report carries it
    assert trial_module.report_epoch(4, summaries, run_dirs, "abc") == pytest.approx(0.7) and len(heard) == 2
