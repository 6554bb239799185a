"""After the trials: every row's per-image predictions into RESULTS/predictions.parquet (one row per trial, split,
image), taken from each Ray trial's final checkpoint (Ray's storage: works whether or not the nodes share the
results folder), else from the row's run folder. Result files a run folder lacks (a trial trained on another node
without shared storage) are copied into it from the checkpoint, so RESULTS/trials/<row id>/ is complete either way."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import pandas as pd

from sweep.engine.predictions import PREDICTIONS_FILE
from sweep.files import write_bytes_atomic
from sweep.tune.handover import take_back
from sweep.tune.rows import row_id, trial_seeds

PREDICTIONS = "predictions.parquet"  # RESULTS/predictions.parquet (the results contract)


def collect_predictions(grid, out: Path, say: Callable[[str], None]) -> pd.DataFrame | None:
    """RESULTS/predictions.parquet from every finished Ray trial of `grid` (a Tune ResultGrid); None when no row
    has predictions. Missing result files of a row's run folder are restored from its trial's checkpoint."""
    frames, missing = [], []
    for result in grid:
        config, metrics = result.config or {}, result.metrics or {}
        if not config.get("trial") or not metrics.get("final"):
            continue  # never started, stopped by the scheduler, or failed: no test predictions
        ray_id = metrics.get("trial_id") or Path(result.path).name.split("_")[1]
        run_dirs = {seed: out / "trials" / row_id(ray_id, seed) for seed in trial_seeds(config["trial"])}
        if result.checkpoint is not None:  # the final report's checkpoint: every seed's result files
            with result.checkpoint.as_directory() as folder:  # downloaded when Ray's storage is remote
                take_back(Path(folder), run_dirs)
        for seed, run_dir in run_dirs.items():
            path = run_dir / PREDICTIONS_FILE
            if not path.is_file():
                missing.append(row_id(ray_id, seed))
                continue
            frame = pd.read_parquet(path)
            frame.insert(0, "trial_id", row_id(ray_id, seed))
            frames.append(frame)
    if missing:
        say(f"warning: no per-image predictions for {len(missing)} finished row(s): {', '.join(missing[:5])}")
    if not frames:
        return None
    table = pd.concat(frames, ignore_index=True)
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    write_bytes_atomic(out / PREDICTIONS, buffer.getvalue())
    return table
