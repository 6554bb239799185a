"""A trials.csv row from what Ray knows of a finished trial: its real id, Ray's status, the contract's train_status,
the metrics it reported, and for a failed trial its message.

A trial reports every epoch but its last (epoch, validation metrics, the weights a stop now would be scored with),
then once with `final=True` and its test metrics. So:
- `final` reported: the trial trained to its end; train_status is what training said (completed, early_stopped,
  diverged);
- Ray says ERROR: train_status `error`, `message` is the error's last line (after every retry);
- otherwise Ray stopped it (ASHA/HyperBand): `stopped_by_scheduler`, with the validation metrics of the weights
  it would be scored with, `epochs` reached, and no test metrics.
"""
from __future__ import annotations

from typing import Any

from sweep.tune.results import trial_row

# Ray's bookkeeping and the trial's progress keys: not columns of trials.csv
NOT_COLUMNS = ("final", "epoch", "done", "training_iteration", "time_this_iter_s", "time_total_s", "timestamp",
               "pid", "hostname", "time_since_restore", "iterations_since_restore", "date", "checkpoint_dir_name",
               "should_checkpoint", "wall_seconds", "config", "experiment_tag", "checkpointed", "final_epoch",
               "weights_val_accuracy", "weights_val_loss")
# what a stopped trial's last epoch report contributes to its row
STOPPED_KEYS = {"weights_val_accuracy": "val_accuracy", "weights_val_loss": "val_loss", "best_epoch": "best_epoch",
                "weights_epoch": "weights_epoch", "epoch": "epochs", "node_id": "node_id", "node_ip": "node_ip",
                "resumed_from_epoch": "resumed_from_epoch"}


def finished_trials(grid) -> list:
    """The Trial objects behind a ResultGrid (Ray keeps them on its ExperimentAnalysis; ResultGrid's own
    num_errors/num_terminated read the same list), in the grid's order."""
    return list(grid._experiment_analysis.trials)


def error_line(trial) -> str:
    """The last line of a failed trial's error (e.g. 'UsageError: unknown model ...'), at most 300 characters."""
    text = str(trial.get_error() or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "failed without an error message")[:300]


def row_of_trial(trial) -> dict[str, Any] | None:
    """The trials.csv row of a trial that ended (TERMINATED or ERROR); None for one still pending or running."""
    if trial.status not in ("TERMINATED", "ERROR"):
        return None
    metrics = dict(trial.last_result or {})
    if metrics.get("final") and trial.status == "TERMINATED":
        row = trial_row(trial.trial_id, "TERMINATED", trial.config["trial"], metrics)
    else:
        row = trial_row(trial.trial_id, trial.status, trial.config["trial"],
                        {column: metrics[key] for key, column in STOPPED_KEYS.items() if key in metrics})
        if trial.status == "ERROR":
            row.update(train_status="error", message=error_line(trial))
        else:
            row["train_status"] = "stopped_by_scheduler"
    row["failures"] = int(trial.num_failures)
    for key in NOT_COLUMNS:
        row.pop(key, None)
    return row


def rows_of(trials) -> list[dict[str, Any]]:
    """The rows of every trial that ended; trials never started or still running (an interrupted sweep) have none."""
    return [row for row in map(row_of_trial, trials) if row is not None]
