"""Load a finished run: rebuild its model from config.json and restore the weights its metrics came from."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import flax.nnx as nnx
import numpy as np

from sweep import UsageError
from sweep.configs.io import config_from_dict
from sweep.configs.schema import TrainConfig
from sweep.engine import autotune
from sweep.engine.checkpoint import RunCheckpoints
from sweep.engine.run_folder import CONFIG_FILE
from sweep.engine.steps import make_predict_fn, split_model
from sweep.engine.model_init import init_model


@dataclasses.dataclass
class LoadedRun:
    """A trained run: its model (eval mode, selected weights), config and class names."""

    model: object
    config: TrainConfig
    classes: tuple[str, ...]
    image_size: int
    weights_epoch: int
    run_dir: Path

    def predict_fn(self, batch_size: int = 64) -> Callable[[np.ndarray], np.ndarray]:
        """images (N,H,W,1) float in [0,1] -> probabilities (N,K); one compilation for any N, with this machine's
        autotuned kernel forms for the run's model when the table has them."""
        autotune.activate_cached(autotune.config_program_key(self.config))
        return make_predict_fn(self.model, self.config.pipeline, batch_size)


def _weights_epoch(run_dir: Path, config: TrainConfig, meta: dict, latest: int) -> int:
    """The epoch the run's metrics came from: metrics.json's weights_epoch, else what config.weights selects."""
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        recorded = json.loads(metrics.read_text()).get("weights_epoch")
        if recorded:
            return int(recorded)
    best = meta.get("best_epoch")
    return int(best) if config.weights == "best" and best else latest


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild the model of a run folder and restore the weights its test metrics were computed with."""
    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / "checkpoints" if (run_dir / "checkpoints").is_dir() else run_dir
    config_path = next((p for p in (run_dir / CONFIG_FILE, checkpoint_dir / CONFIG_FILE) if p.is_file()), None)
    if config_path is None:
        raise UsageError(f"{run_dir} is not a run folder: no {CONFIG_FILE} (expected from `fusion-sweep train`)")
    config = config_from_dict(json.loads(config_path.read_text()))
    checkpoints = RunCheckpoints(checkpoint_dir)
    try:
        latest = checkpoints.latest_epoch()
        if latest is None:
            raise UsageError(f"{checkpoint_dir} holds no finished epoch yet")
        meta = checkpoints.meta(latest)
        epoch = _weights_epoch(run_dir, config, meta, latest)
        classes = tuple(meta["classes"])
        # shapes only: no initialiser runs (each would compile a small XLA program: seconds per model)
        model = nnx.eval_shape(lambda: init_model(config, len(classes), int(meta["image_size"])))
        _, params, rest = split_model(model, train=False)
        restored = checkpoints.restore_weights(epoch, {"params": params, "rest": rest})
        if restored is None:
            raise UsageError(f"{checkpoint_dir} does not hold the weights of epoch {epoch} (its metrics' "
                             f"weights_epoch); it holds epoch {latest}")
    finally:
        checkpoints.close()
    nnx.update(model, restored["params"], restored["rest"])
    model.eval()
    return LoadedRun(model, config, classes, int(meta["image_size"]), int(epoch), run_dir)
