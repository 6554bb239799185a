"""The Keras peers: sweep/bench/keras_peer.py --serve in one subprocess per backend, timing windows on request so
the bench interleaves them with ours; and our/peer ratios from those windows."""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path

from sweep.bench.timing import Window, steps_for

REPO_ROOT = Path(__file__).resolve().parents[2]
PEER_SCRIPT = Path(__file__).with_name("keras_peer.py")  # a standalone script: Keras only, no project imports
# TensorFlow lives in its own venv: installing it into .venv would change how tensorflow-datasets behaves.
DEFAULT_TF_VENV = REPO_ROOT / ".venv-peer-tf"
BACKENDS = ("jax", "tensorflow")
# The jit_compile settings each backend's models are timed with: TensorFlow's default on CPU is False (graph mode
# with oneDNN), True compiles with XLA; which is faster depends on the model and the CPU, so both run and each
# figure compares with the faster. Keras on JAX always compiles with XLA (None: its default).
JIT_SETTINGS = {"jax": (None,), "tensorflow": (False, True)}


def setting_name(backend: str, jit_compile) -> str:
    """'jax', 'tensorflow_jit_false', 'tensorflow_jit_true': a candidate's name in the bench's figures."""
    return backend if jit_compile is None else f"{backend}_jit_{str(bool(jit_compile)).lower()}"


class PeerError(RuntimeError):
    """The peer process failed, timed out or answered with an error."""


def default_peer_python() -> str | None:
    """.venv-peer-tf/bin/python when that venv exists (`make peer` creates it), else None."""
    candidate = DEFAULT_TF_VENV / "bin" / "python"
    return str(candidate) if candidate.exists() else None


def peer_pythons(peer_python: str | None) -> dict[str, str]:
    """Interpreter per backend: JAX runs on this interpreter; TensorFlow on --peer-python (default .venv-peer-tf)."""
    tf_python = peer_python or default_peer_python() or sys.executable
    return {"jax": sys.executable, "tensorflow": tf_python}


class KerasPeer:
    """One Keras backend answering timing requests in its own process (its own defaults: no XLA_FLAGS, no
    PYTHONPATH). Raises PeerError when it cannot start, fails or exceeds `timeout` seconds on one request."""

    def __init__(self, backend: str, python: str, timeout: float = 900.0):
        if backend not in BACKENDS:
            raise ValueError(f"peer backend must be one of {BACKENDS}, got {backend!r}")
        self.backend, self.python, self.timeout = backend, python, timeout
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("XLA_FLAGS", None)
        env.pop("PYTHONPATH", None)
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._proc = subprocess.Popen([python, str(PEER_SCRIPT), "--serve"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env, cwd="/")
        self.hello = self.ask(cmd="hello")
        self.model_info: dict = {}  # per jit_compile setting of the prepared model
        self.settings = JIT_SETTINGS[backend]

    def ask(self, **request) -> dict:
        """Send one request, wait for its one-line JSON answer."""
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise PeerError(f"keras {self.backend} peer ({self.python}) exited: {self._stderr_tail()}") from None
        ready, _, _ = select.select([self._proc.stdout], [], [], self.timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not ready:
            self.close()
            raise PeerError(f"keras {self.backend} peer gave no answer to {request['cmd']!r} in {self.timeout:.0f} s")
        if not line:
            raise PeerError(f"keras {self.backend} peer ({self.python}) exited: {self._stderr_tail()}")
        reply = json.loads(line)
        if "error" in reply:
            raise PeerError(f"keras {self.backend} peer: {reply['error']}")
        return reply

    def prepare_model(self, name: str, image_size: int, batch_size: int) -> dict:
        """Build the model once per jit_compile setting; {setting: the peer's facts (params, first-call s...)}."""
        self.model_info = {}
        for i, jit_compile in enumerate(self.settings):
            self.model_info[jit_compile] = self.ask(cmd="model", model=name, image_size=image_size,
                                                    batch_size=batch_size, jit_compile=jit_compile, keep=i > 0)
        return self.model_info

    def window(self, phase: str, window_s: float, layer: int | None = None, step_s: float | None = None,
               jit_compile=None) -> Window:
        """A timed window of the prepared model's `phase` (train|eval) with this jit_compile setting, or conv
        `layer`'s (fwd|grad), measured inside the peer process; the number of steps fills about `window_s`."""
        steps = steps_for(step_s if step_s is not None else self.model_info[jit_compile][f"{phase}_step_s"], window_s)
        request = {"cmd": "window", "phase": phase, "steps": steps, "layer": layer}
        if layer is None:
            request["jit_compile"] = jit_compile

        def run() -> tuple[float, float]:
            reply = self.ask(**request)
            return reply["wall_s"], reply["cpu_s"]

        return run

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().strip().splitlines()
        return lines[-1] if lines else f"exit code {self._proc.poll()}"

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()


def open_peers(peer_python: str | None, log=print) -> tuple[dict[str, KerasPeer], dict[str, dict]]:
    """Start both Keras backends; (running peers, {"keras_<backend>": {"skipped": why}} for those that cannot)."""
    peers, skipped = {}, {}
    for backend, python in peer_pythons(peer_python).items():
        try:
            peers[backend] = KerasPeer(backend, python)
        except PeerError as err:
            skipped[f"keras_{backend}"] = {"skipped": str(err), "python": python}
            log(f"[bench] keras {backend} peer skipped: {err}")
    return peers, skipped
