"""Ray Tune end to end with the real trainer: two nodes, a node killed mid-sweep, a driver killed and resumed.

Each test runs a tiny sweep (CNN-branch fusions at 16 px, ~90 images, 1-2 epochs) so it finishes in about a minute.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = ["--num-images", "90", "--image-size", "16", "--batch-size", "8", "--cnn-cuts", "block1_drop,block2_drop",
        "--resnet-cuts", "none", "--branch-widths", "8,16", "--head-widths", "16", "--no-parents",
        "--set", "space.include_seed_fusion=false", "--no-explain"]


def _tiny_sweep(epochs: int = 1, max_failures: int = 3):
    from sweep.commands.run import add_arguments, build_sweep
    from sweep.tune.space import expand
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sweep = build_sweep(parser.parse_args(TINY + ["--epochs", str(epochs), "--max-failures", str(max_failures)]))
    return sweep, expand(sweep)


@pytest.fixture
def two_nodes():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster, worker
    import ray

    ray.shutdown()
    cluster.shutdown()


@pytest.mark.cluster
def test_trials_land_on_both_nodes(tmp_path, two_nodes):
    from sweep.tune.driver import run_sweep

    cluster, worker = two_nodes
    sweep, trials = _tiny_sweep()
    assert run_sweep(sweep, trials, out=tmp_path, address=cluster.address, explain=False) == 0
    table = pd.read_csv(tmp_path / "trials.csv")
    assert len(table) == len(trials) == 4
    assert (table["status"] == "TERMINATED").all() and table["test_accuracy"].notna().all()
    assert table["node_id"].nunique() == 2, table[["trial_id", "node_id"]]


@pytest.mark.cluster
def test_killing_the_worker_node_mid_sweep_still_finishes_every_trial(tmp_path, two_nodes):
    from sweep.tune.driver import run_sweep

    cluster, worker = two_nodes
    sweep, trials = _tiny_sweep(epochs=3)
    killed = threading.Event()

    def kill_worker_once_two_trials_run():
        deadline = time.time() + 120
        while time.time() < deadline:
            started = list((tmp_path / "trials").glob("*/config.json")) if (tmp_path / "trials").is_dir() else []
            if len(started) >= 2:
                time.sleep(3)  # both trials (one per node) are inside training now
                cluster.remove_node(worker, allow_graceful=False)
                killed.set()
                return
            time.sleep(0.5)

    killer = threading.Thread(target=kill_worker_once_two_trials_run, daemon=True)
    killer.start()
    run_sweep(sweep, trials, out=tmp_path, address=cluster.address, explain=False)
    killer.join(timeout=5)
    assert killed.is_set()
    table = pd.read_csv(tmp_path / "trials.csv")
    assert len(table) == len(trials)
    assert (table["status"] == "TERMINATED").all(), table[["trial_id", "status"]]
    assert table["test_accuracy"].notna().all()


@pytest.mark.slow
def test_driver_killed_after_first_trial_resumes_without_rerunning_finished_trials(tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "sweep.cli", "run", "--out", str(out), "--epochs", "2", *TINY]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    driver = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    table = out / "trials.csv"
    deadline = time.time() + 240
    while time.time() < deadline and not table.is_file():
        time.sleep(0.5)
    assert table.is_file(), "no trial finished in time"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    finished = pd.read_csv(table)
    stamps = {t: (out / "trials" / t / "metrics.json").stat().st_mtime for t in finished["trial_id"]}
    time.sleep(2)  # let Ray's orphaned processes notice their driver is gone
    resumed = subprocess.run(command + ["--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    final = pd.read_csv(table)
    assert len(final) == 4 and (final["status"] == "TERMINATED").all() and final["test_accuracy"].notna().all()
    for trial_id, stamp in stamps.items():  # finished trials were not trained again
        assert (out / "trials" / trial_id / "metrics.json").stat().st_mtime == stamp
    assert set(finished["trial_id"]) <= set(final["trial_id"])
