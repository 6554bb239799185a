"""`fusion-sweep layers` and `fusion-sweep profile`: output, the seed's numbers, and bad input before compiling."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from models.cnn import CNN_LAYERS
from models.resnet_v2 import RESNET50V2_LAYERS
from sweep.cli import main

REPO = Path(__file__).resolve().parents[2]
PROFILE_KEYS = {"params", "trainable_params", "non_trainable_params", "flops", "latency_ms", "output_shape"}


def test_layers_lists_every_cut_point(capsys):
    assert main(["layers", "cnn"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert list(lines) == list(CNN_LAYERS)
    assert "32x32x128" in lines["block3_drop"] and "126,912" in lines["block3_drop"]
    assert "69,244,610" in lines["predictions"]

    assert main(["layers", "resnet50v2", "--image-size", "64"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert list(lines) == list(RESNET50V2_LAYERS)
    assert "4x4x128" in lines["conv3_block4_2_relu"] and "23,564,800" in lines["post_relu"]


def test_layers_rejects_a_too_small_image(capsys):
    assert main(["layers", "cnn", "--image-size", "8"]) == 2
    assert "image_size 8 is too small for cnn" in capsys.readouterr().err


def test_profile_json_of_the_seed_fusion(capsys):
    argv = ["profile", "--model", "fusion", "--cnn-cut", "block3_drop", "--resnet-cut", "conv3_block4_2_relu",
            "--image-size", "256", "--json", "--no-latency"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == PROFILE_KEYS
    assert (result["params"], result["non_trainable_params"]) == (10_437_570, 8000)
    assert result["output_shape"] == [1, 2] and result["flops"] > 1e9 and result["latency_ms"] is None


def test_profile_table_of_a_tiny_fusion(capsys):
    argv = ["profile", "--cnn-cut", "block1_drop", "--resnet-cut", "none", "--branch-width", "4",
            "--head-width", "4", "--image-size", "16", "--num-classes", "3", "--repeats", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for label in ("params", "trainable", "non-trainable", "forward FLOPs", "latency", "output shape"):
        assert label in out
    assert "[1, 3]" in out and "cnn:block1_drop/b4/h4" in out


@pytest.mark.parametrize("argv, message", [
    (["--cnn-cut", "block3_dorp"], "closest: block3_drop"),
    (["--resnet-cut", "conv3_block4_2_rleu"], "conv3_block4_2_relu"),
    (["--branch-width", "0"], "branch_width must be a positive int, got 0"),
    (["--head-width", "-1"], "head_width must be a positive int, got -1"),
    (["--num-classes", "1"], "num_classes must be an int >= 2, got 1"),
    (["--channels", "2"], "channels must be 1 or 3, got 2"),
    (["--image-size", "4"], "image_size 4 is too small for cnn up to 'block3_pool'"),
    (["--model", "cnn", "--cnn-cut", "block1_drop"], "--cnn-cut only apply to --model fusion"),
    (["--model", "cnn", "--image-size", "16"], "image_size 16 is too small for cnn"),
])
def test_profile_bad_input_fails_before_compiling(argv, message, capsys, monkeypatch):
    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled before rejecting the input")

    monkeypatch.setattr(jax, "jit", no_compiling)
    assert main(["profile", "--json", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


@pytest.mark.slow
@pytest.mark.parametrize("model, params", [("fusion", 10_437_570), ("cnn", 69_244_610), ("resnet50v2", 292_006_402)])
def test_done_when_commands(model, params):
    """The issue's exact commands, through the installed console script (latency included)."""
    script = REPO / ".venv" / "bin" / "fusion-sweep"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "sweep.cli"]
    extra = ["--cnn-cut", "block3_drop", "--resnet-cut", "conv3_block4_2_relu"] if model == "fusion" else []
    out = subprocess.run([*cmd, "profile", "--model", model, *extra, "--image-size", "256", "--json"],
                         check=True, capture_output=True, text=True, cwd=REPO).stdout
    result = json.loads(out)
    assert result["params"] == params and result["latency_ms"] > 0
