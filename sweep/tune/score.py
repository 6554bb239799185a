"""`fusion-sweep run --score-stopped`: test metrics for the rows of trials a scheduler stopped (ASHA, HyperBand).

A stopped seed's run folder holds one checkpoint: trials checkpoint at every rung where a scheduler may stop them
(sweep.tune.driver.scheduler_epochs), so it is the checkpoint of the epoch the trial was stopped at, carrying the
weights its row's validation metrics come from (`weights_epoch`: the best so far, or the last). Those weights are
scored on the test split here, in the driver, after the trials; the row keeps `stopped_by_scheduler` and gains
`scored_stopped = True`, so tables and plots tell it from a trial that trained to its end (a seed that had stopped
early before its trial was stopped is scored too, as the trial's end would have). A row whose checkpoint
does not hold the weights of its `weights_epoch` (stopped between rungs) stays without test metrics, with the
reason in its `message`.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import pandas as pd

from sweep.files import write_bytes_atomic
from sweep.tune.collect import PREDICTIONS
from sweep.tune.handover import CHECKPOINTS, saved_epoch, take_back
from sweep.tune.rows import trial_seeds

STOPPED = "stopped_by_scheduler"
# a seed that stopped early while its siblings trained on has its test metrics only at the trial's end: scored here
# too when the scheduler stopped the trial before that end
UNSCORED_STATES = (STOPPED, "early_stopped")


def score_stopped_rows(trials, rows: list[dict], out: Path, say: Callable[[str], None]) -> int:
    """Add test metrics (and per-image predictions) to every stopped row of `rows` (Ray Trials `trials`); the
    number scored."""
    stopped = [row for row in rows if row.get("train_status") in UNSCORED_STATES and row.get("status") == "TERMINATED"
               and row.get("test_accuracy") is None]
    if not stopped:
        return 0
    _fetch_stopped_checkpoints(trials, stopped, out)
    say(f"scoring {len(stopped)} row(s) of trials the scheduler stopped on the test split (--score-stopped)")
    frames, cache = [], {}
    for row in stopped:
        frame = _score_row(row, out / "trials" / row["trial_id"], cache)
        if frame is not None:
            frames.append(frame)
    if frames:
        _append_predictions(out, frames)
    return len(frames)


def _fetch_stopped_checkpoints(trials, stopped: list[dict], out: Path) -> None:
    """Ray's last checkpoint of each stopped trial into its rows' run folders where those lack it or hold an older
    one (run folders on another node's disk)."""
    wanted = {row["trial_id"] for row in stopped}
    for trial in trials:
        run_dirs = {seed: out / "trials" / f"{trial.trial_id}-s{seed}" for seed in trial_seeds(trial.config["trial"])}
        if trial.checkpoint is None or not {d.name for d in run_dirs.values()} & wanted:
            continue
        with trial.checkpoint.as_directory() as folder:
            take_back(Path(folder), run_dirs)


def _score_row(row: dict, run_dir: Path, cache: dict) -> pd.DataFrame | None:
    """The row's weights scored on the test split: metrics merged into `row`, its per-image predictions returned."""
    from data.builder import prepare
    from sweep.engine.evaluate import evaluate_splits
    from sweep.engine.load import load_run
    from sweep.engine.metrics import classification_metrics, is_collapsed
    from sweep.engine.predictions import predictions_frame, write_predictions
    from sweep.engine.steps import make_eval_step, split_model

    epoch = row.get("weights_epoch")
    held = saved_epoch(run_dir / CHECKPOINTS)
    if held is None or epoch is None or held < int(epoch):
        row["message"] = (f"not scored: its checkpoint holds epoch {held}, not the weights of epoch {epoch} its "
                          "validation metrics come from")
        return None
    loaded = load_run(run_dir)
    if loaded.weights_epoch != int(epoch):
        row["message"] = f"not scored: its checkpoint selects epoch {loaded.weights_epoch}, its row epoch {epoch}"
        return None
    spec = loaded.config.data
    if repr(spec) not in cache:
        cache[repr(spec)] = prepare(spec)
    split = cache[repr(spec)].split("test")
    graph, params, rest = split_model(loaded.model, train=False)
    scored = evaluate_splits(make_eval_step(graph, loaded.config.pipeline), params, rest, {"test": split},
                             loaded.config.pipeline, loaded.config.eval_batch_size)
    test = scored["test"]
    row.update({"test_loss": test.loss, "test_n": int(len(test.labels)),
                "scored_stopped": row["train_status"] == STOPPED, "collapsed": bool(is_collapsed(test.probs.argmax(1))) if len(test.labels) else False})
    for key, value in classification_metrics(test.labels, test.probs, loaded.classes, prefix="test_").items():
        if isinstance(value, (list, tuple, dict)):
            continue  # the confusion matrix and class list stay in the run folder's files
        column = key[len("test_"):] if key.startswith(("test_recall_", "test_precision_")) else key
        row[column] = value
    frame = predictions_frame(scored, {"test": split.ids}, loaded.classes, {"test": getattr(split, "groups", None)})
    write_predictions(run_dir, frame)
    frame.insert(0, "trial_id", row["trial_id"])
    return frame


def _append_predictions(out: Path, frames: list[pd.DataFrame]) -> None:
    """RESULTS/predictions.parquet with the scored stopped rows' predictions added."""
    existing = out / PREDICTIONS
    table = pd.concat(([pd.read_parquet(existing)] if existing.is_file() else []) + frames, ignore_index=True)
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    write_bytes_atomic(existing, buffer.getvalue())
