"""Tune plumbing without starting Ray: scheduler choice, core claiming, picklable progress, rows of stopped trials."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweep.configs.presets import get_preset
from sweep.tune.driver import make_scheduler
from sweep.tune.rows import row_of_trial
from sweep.tune.progress import Progress

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


class FakeTrial:
    """What rows.row_of_trial reads of Ray's Trial."""

    def __init__(self, status, last_result, error=None, trial_id="abc12_00001", failures=0):
        self.trial_id, self.status, self.last_result, self.num_failures = trial_id, status, last_result, failures
        self.config = {"trial": {"model": "fusion", "cnn_cut": "block1_drop", "resnet_cut": None,
                                 "branch_width": 16, "head_width": 16, "seed": 0}}
        self._error = error

    def get_error(self):
        return self._error


def test_a_trial_stopped_by_the_scheduler_keeps_the_validation_of_the_weights_it_would_be_scored_with():
    last = {"val_accuracy": 0.6, "weights_val_accuracy": 0.7, "weights_val_loss": 0.5, "best_epoch": 1,
            "weights_epoch": 1, "epoch": 2, "final": False, "loss": 0.3, "checkpointed": True}
    row = row_of_trial(FakeTrial("TERMINATED", last))
    assert row["train_status"] == "stopped_by_scheduler" and row["status"] == "TERMINATED"
    assert row["val_accuracy"] == 0.7 and row["val_loss"] == 0.5 and row["weights_epoch"] == 1
    assert row["epochs"] == 2 and "test_accuracy" not in row and "checkpointed" not in row


def test_a_finished_trial_keeps_its_train_status_and_a_failed_one_its_real_id_and_message():
    done = row_of_trial(FakeTrial("TERMINATED", {"final": True, "train_status": "early_stopped", "epochs_run": 4,
                                                 "test_accuracy": 0.8, "weights_epoch": 2, "epoch": 4}))
    assert done["train_status"] == "early_stopped" and done["epochs"] == 4 and done["test_accuracy"] == 0.8
    trace = "Traceback (most recent call last):\n  File ...\nsweep.UsageError: unknown model 'x'; choose one of: cnn\n"
    failed = row_of_trial(FakeTrial("ERROR", {}, error=trace, trial_id="abc12_00007", failures=2))
    assert failed["trial_id"] == "abc12_00007" and failed["status"] == "ERROR" and failed["train_status"] == "error"
    assert failed["message"] == "sweep.UsageError: unknown model 'x'; choose one of: cnn" and failed["failures"] == 2
    assert row_of_trial(FakeTrial("RUNNING", {"epoch": 1})) is None  # an interrupted sweep's unfinished trial


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
        assert scheduler_epochs(sweep.replace(scheduler="asha")) == []


def test_a_trial_checkpoints_every_n_epochs_and_where_it_may_be_paused():
    from sweep.tune.trial import checkpoint_schedule

    due = checkpoint_schedule({"checkpoint_every": 3, "checkpoint_epochs": [1, 4]})
    assert [epoch for epoch in range(1, 10) if due(epoch)] == [1, 3, 4, 6, 9]


def test_a_restarted_trial_takes_rays_checkpoint_only_when_it_is_newer(tmp_path):
    from ray import tune

    from sweep.tune.trial import adopt_ray_checkpoint

    rays = tmp_path / "ray"
    (rays / "4").mkdir(parents=True)
    (rays / "config.json").write_text("{}")
    here = tmp_path / "run" / "checkpoints"
    assert adopt_ray_checkpoint(None, here) == 0  # a fresh trial
    assert adopt_ray_checkpoint(tune.Checkpoint.from_directory(str(rays)), here) == 4
    assert sorted(p.name for p in here.iterdir()) == ["4", "config.json"]
    (here / "4").rename(here / "6")  # this node got further than Ray's copy
    assert adopt_ray_checkpoint(tune.Checkpoint.from_directory(str(rays)), here) == 6
    assert (here / "6").is_dir() and not (here / "4").exists()
