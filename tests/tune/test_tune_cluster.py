"""Ray Tune end to end with the real trainer: two nodes, a node killed mid-sweep, a driver killed and resumed, a trial
worker SIGKILLed by pid, a trial that raises, an ASHA sweep that stops trials.

Each test runs a tiny sweep (CNN-branch fusions at 16 px, ~90 images, 1-4 epochs, one seed per configuration unless
it says otherwise) so it finishes in a minute or two.
"""
from __future__ import annotations

import json
import os
import re
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
        "--set", "space.include_seed_fusion=false", "--no-explain", "--seeds", "1"]


ROW_ID = re.compile(r"[0-9a-f]{5}_\d{5}-s\d+")  # <ray trial id>-s<seed>
FINISHED = ("completed", "early_stopped")


def _tiny_sweep(epochs: int = 1, max_failures: int = 3, *extra: str):
    from sweep.commands.run import add_arguments, build_sweep
    from sweep.tune.space import expand
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sweep = build_sweep(parser.parse_args(TINY + ["--epochs", str(epochs), "--max-failures", str(max_failures),
                                                  *extra]))
    return sweep, expand(sweep)


def _all_finished_with_test_metrics(table) -> None:
    assert (table["status"] == "TERMINATED").all(), table[["trial_id", "status", "train_status"]]
    assert table["train_status"].isin(FINISHED).all(), table[["trial_id", "train_status"]]
    assert table["test_accuracy"].notna().all() and (table["weights_epoch"] >= 1).all()


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
    _all_finished_with_test_metrics(table)
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
    _all_finished_with_test_metrics(table)
    assert table["failures"].sum() >= 1  # the trial on the removed node was restarted


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
    assert len(final) == 4
    _all_finished_with_test_metrics(final)
    for trial_id, stamp in stamps.items():  # finished trials were not trained again
        assert (out / "trials" / trial_id / "metrics.json").stat().st_mtime == stamp
    assert set(finished["trial_id"]) <= set(final["trial_id"])


def _reports(out: Path) -> list[dict]:
    """Every result Ray's driver has logged so far (result.json of each trial), oldest first per trial."""
    reports = []
    for path in (out / "ray" / "sweep").glob("*/result.json"):
        reports += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return reports


@pytest.mark.slow
def test_a_trial_worker_sigkilled_mid_sweep_is_retried_from_its_checkpoint(tmp_path):
    """SIGKILL the worker process of a running trial (by the pid Ray logs with each of its results) right after
    its first checkpointed epoch: Ray restarts it, it continues from that checkpoint, and every row ends with test
    metrics."""
    from sweep.tune.driver import run_sweep

    sweep, trials = _tiny_sweep(4, 3, "--checkpoint-every", "1", "--num-images", "600", "--max-concurrent", "1")
    killed: dict = {}

    def kill_a_trial_after_its_first_checkpoint():
        deadline = time.time() + 600
        while time.time() < deadline and not killed:
            for report in _reports(tmp_path):
                if report.get("checkpointed") and report.get("epoch", 0) < sweep.train.epochs - 1:
                    os.kill(report["pid"], signal.SIGKILL)
                    killed.update(trial_id=f"{report['trial_id']}-s0", after=report["epoch"])
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_a_trial_after_its_first_checkpoint, daemon=True)
    killer.start()
    assert run_sweep(sweep, trials, out=tmp_path, explain=False) == 0
    killer.join(timeout=5)
    assert killed, "no trial reported a checkpointed epoch in time"
    table = pd.read_csv(tmp_path / "trials.csv").set_index("trial_id")
    assert len(table) == len(trials)
    _all_finished_with_test_metrics(table.reset_index())
    row = table.loc[killed["trial_id"]]
    assert row["failures"] == 1 and row["resumed_from_epoch"] >= killed["after"], row
    assert (table.drop(index=killed["trial_id"])["failures"] == 0).all()


@pytest.mark.slow
def test_a_trial_that_raises_is_retried_then_recorded_as_error_while_the_others_finish(tmp_path):
    """A trial that raises before its first report (here: a model name no code knows) is restarted
    --max-failures times, then kept as a row with its real id, `error` and the exception's message; the other
    trials finish with test metrics and the run exits 1."""
    from sweep.tune.driver import run_sweep

    sweep, trials = _tiny_sweep(1, 1)
    bad = dict(trials[0], model="no_such_model")
    code = run_sweep(sweep, [bad, *trials[1:]], out=tmp_path, explain=False)
    assert code == 1
    table = pd.read_csv(tmp_path / "trials.csv")
    assert len(table) == len(trials)
    failed = table[table["model"] == "no_such_model"].iloc[0]
    assert ROW_ID.fullmatch(failed["trial_id"]), failed["trial_id"]
    assert failed["status"] == "ERROR" and failed["train_status"] == "error" and failed["failures"] == 2
    assert "unknown model 'no_such_model'" in failed["message"]
    _all_finished_with_test_metrics(table[table["model"] != "no_such_model"])


@pytest.mark.slow
def test_an_asha_sweep_ends_with_test_metrics_for_survivors_and_a_row_per_stopped_seed(tmp_path, capsys):
    """The issue's ASHA command, small: 6 configurations x 2 seeds, 3 epochs, one trial at a time (so ASHA's
    decisions do not depend on timing). Survivors train to the end and have test metrics; every seed of a stopped
    trial keeps a `stopped_by_scheduler` row with the validation of its weights and the epoch reached, scored on the
    test split from the checkpoint taken at the rung (--score-stopped); one report; exit 0."""
    from sweep.tune.driver import run_sweep

    sweep, trials = _tiny_sweep(3, 0, "--scheduler", "asha", "--seeds", "2", "--max-concurrent", "1",
                                "--cnn-cuts", "block1_drop,block2_drop,block3_drop", "--branch-widths", "4,32",
                                "--score-stopped")
    assert len(trials) == 6 and sweep.score_stopped
    assert run_sweep(sweep, trials, out=tmp_path, explain=False) == 0
    table = pd.read_csv(tmp_path / "trials.csv")
    assert len(table) == 12 and table["trial_id"].str.fullmatch(ROW_ID).all()
    assert (table["status"] == "TERMINATED").all()
    stopped = table[table["train_status"] == "stopped_by_scheduler"]
    survivors = table[table["train_status"].isin(FINISHED)]
    assert len(stopped) + len(survivors) == len(table), table[["trial_id", "train_status"]]
    assert len(survivors) >= 2 and len(stopped) >= 2, table[["trial_id", "train_status", "val_accuracy"]]
    assert survivors["test_accuracy"].notna().all() and (survivors["epochs"] == 3).all()
    assert (stopped["epochs"] < 3).all() and stopped["val_accuracy"].notna().all()
    assert stopped["test_accuracy"].notna().all() and stopped["scored_stopped"].astype(bool).all()
    assert (stopped["weights_epoch"] <= stopped["epochs"]).all()
    for row in stopped.itertuples():  # one checkpoint per seed, at the rung where ASHA stopped it
        assert sorted(p.name for p in (tmp_path / "trials" / row.trial_id / "checkpoints").iterdir()
                      if p.name.isdigit()) == [str(row.epochs)]
    seeds_per_trial = table.groupby(table["trial_id"].str.rsplit("-", n=1).str[0])["train_status"].agg(set)
    assert all(len(statuses) == 1 for statuses in seeds_per_trial), seeds_per_trial  # a trial is stopped as a whole
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    assert set(predictions["trial_id"]) == set(table["trial_id"])
    out = capsys.readouterr().out
    assert "error:" not in out and (tmp_path / "report.md").is_file() and (tmp_path / "report.html").is_file()
    assert "stopped by scheduler" in (tmp_path / "report.md").read_text()
