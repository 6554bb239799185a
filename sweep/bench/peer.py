"""Run sweep/bench/keras_peer.py in one subprocess per Keras backend and turn its figures into our/peer ratios."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PEER_SCRIPT = Path(__file__).with_name("keras_peer.py")  # a standalone script: Keras only, no project imports
# TensorFlow lives in its own venv: installing it into .venv would change how tensorflow-datasets behaves.
DEFAULT_TF_VENV = REPO_ROOT / ".venv-peer-tf"


def default_peer_python() -> str | None:
    """.venv-peer-tf/bin/python when that venv exists (created as the report of issue 7 says), else None."""
    candidate = DEFAULT_TF_VENV / "bin" / "python"
    return str(candidate) if candidate.exists() else None


def run_peer(backend: str, python: str, *, models: list[str], sizes: list[int], batch_size: int, steps: int,
             windows: int, timeout: float) -> dict:
    """One backend's figures, or {"skipped": reason} when its interpreter lacks keras or the backend."""
    if backend not in ("jax", "tensorflow"):
        raise ValueError(f"peer backend must be 'jax' or 'tensorflow', got {backend!r}")
    cmd = [python, str(PEER_SCRIPT), "--models", ",".join(models), "--sizes", ",".join(map(str, sizes)),
           "--batch-size", str(batch_size), "--steps", str(steps), "--windows", str(windows)]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("XLA_FLAGS", None)  # the peer runs with its own defaults, as a Keras user would
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd="/")
    except subprocess.TimeoutExpired:
        return {"skipped": f"keras {backend} peer timed out after {timeout:.0f} s", "python": python}
    if proc.returncode != 0:
        tail = proc.stderr.strip()[-600:]
        missing = "No module named" in tail
        reason = f"{python} cannot run keras on {backend}" if missing else f"keras {backend} peer failed"
        return {"skipped": f"{reason}: {tail.splitlines()[-1] if tail else proc.returncode}", "python": python}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["python"] = python
    return result


def peer_ratios(ours: list[dict], peers: dict[str, dict]) -> dict[str, float]:
    """{'<model>_<train|eval>_vs_keras_<backend>[_<size>px_b<batch>]': our images/s / peer images/s}.
    The key without a size suffix is the 64 px (or smallest), largest-batch comparison."""
    ratios: dict[str, float] = {}
    for backend, peer in peers.items():
        for theirs in peer.get("results", []):
            for mine in ours:
                if (mine["model"], mine["image_size"], mine["batch_size"]) != (
                        theirs["model"], theirs["image_size"], theirs["batch_size"]):
                    continue
                for phase in ("train", "eval"):
                    if phase in mine and phase in theirs:
                        ratio = mine[phase]["images_per_s"] / theirs[phase]["images_per_s"]
                        key = f"{mine['model']}_{phase}_vs_keras_{backend}"
                        ratios[f"{key}_{mine['image_size']}px_b{mine['batch_size']}"] = ratio
                        ratios.setdefault(key, ratio)
    return ratios


def peer_pythons(peer_python: str | None) -> dict[str, str]:
    """Interpreter per backend: JAX runs on this interpreter; TensorFlow on --peer-python (default .venv-peer-tf)."""
    tf_python = peer_python or default_peer_python() or sys.executable
    return {"jax": sys.executable, "tensorflow": tf_python}
