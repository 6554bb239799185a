"""`fusion-sweep train` killed with SIGKILL during epoch 2 and run again ends with an uninterrupted run's metrics."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMING_KEYS = {"train_seconds", "seconds_per_epoch", "images_per_second", "compile_seconds", "latency_ms"}


def train_command(out: Path) -> list[str]:
    return [sys.executable, "-m", "sweep.cli", "train", "--model", "fusion", "--cnn-cut", "block2_drop",
            "--resnet-cut", "conv2_block1_out", "--branch-width", "16", "--head-width", "16", "--image-size", "32",
            "--num-images", "160", "--channels", "1", "--epochs", "3", "--threads", "1", "--out", str(out)]


def stable_metrics(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}


@pytest.mark.slow
def test_sigkill_during_epoch_2_then_rerun_gives_identical_metrics(tmp_path):
    whole = subprocess.run(train_command(tmp_path / "whole"), cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]

    killed_out = tmp_path / "killed"
    proc = subprocess.Popen(train_command(killed_out), cwd=REPO_ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)
    try:
        for line in proc.stderr:
            if line.startswith("epoch 1/3"):  # printed after epoch 1's checkpoint is on disk
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed_out / "metrics.json").exists()

    rerun = subprocess.run(train_command(killed_out), cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming after epoch" in rerun.stderr
    assert stable_metrics(killed_out) == stable_metrics(tmp_path / "whole")
