"""Tune plumbing without starting Ray: scheduler choice, core claiming, picklable progress, rows of stopped trials."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweep.configs.presets import get_preset
from sweep.tune.driver import make_scheduler, row_of_trial
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


def test_a_trial_stopped_by_the_scheduler_keeps_its_val_accuracy():
    trial = {"model": "fusion", "cnn_cut": "block1_drop", "resnet_cut": None, "branch_width": 16, "head_width": 16,
             "seed": 0}
    row = row_of_trial("t1", "TERMINATED", {"trial": trial}, {"val_accuracy": 0.7, "epoch": 2, "final": False})
    assert row["val_accuracy"] == 0.7 and row["epochs"] == 2 and row["train_status"] == "stopped_by_scheduler"
    assert "test_accuracy" not in row
