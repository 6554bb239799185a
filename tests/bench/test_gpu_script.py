"""The prepared GPU script (python -m sweep.bench.gpu) runs end to end on CPU at a tiny size, compiles each model's
steps three times at most, and imports nothing the GPU machine lacks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")  # as the GPU machine runs it: PYTHONPATH, no install
ABSENT_ON_THE_GPU_MACHINE = ("ray", "shap", "tensorflow_datasets", "tensorflow", "grain", "cv2", "numba")


@pytest.mark.slow
def test_gpu_script_runs_on_cpu_at_a_tiny_size_without_forbidden_imports(tmp_path):
    out = tmp_path / "gpu-test.json"
    argv = ["--kind", "test", "--allow-cpu", "--models", "cnn", "--image-size", "32", "--batch-sizes", "2,4",
            "--windows", "1", "--window-s", "0.01", "--peak-n", "64", "--out", str(out),
            "--precision", "float32"]  # bfloat16 convolutions take minutes to compile on CPU
    code = (f"import runpy, sys; sys.argv = ['sweep.bench.gpu', *{argv!r}]\n"
            "try:\n    runpy.run_module('sweep.bench.gpu', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            f"bad = [m for m in {ABSENT_ON_THE_GPU_MACHINE!r} if m in sys.modules]\n"
            "print('imported:', bad); sys.exit(3 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=ENV)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["complete"] and result["precision"] == "float32" and result["peak"]["dtype"] == "float32"
    rows = {row["batch_size"]: row for row in result["models"]}
    assert set(rows) == {2, 4} and all(row["train"]["images_per_s"] > 0 for row in rows.values())
    # three compilations of the model's steps: train at both batches, eval at the largest only
    assert "eval" in rows[4] and "eval" not in rows[2] and "eval_compile_s" not in rows[2]
    assert list(result["targets"]) == ["resnet50v2_train_images_per_s_b128 >= 1500"]


def test_gpu_script_refuses_a_cpu_backend_without_allow_cpu(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sweep.bench.gpu", "--kind", "x", "--out", str(tmp_path / "x.json")],
                          capture_output=True, text=True, cwd=REPO, env=ENV)
    assert proc.returncode == 2 and "not gpu" in proc.stderr and not (tmp_path / "x.json").exists()
