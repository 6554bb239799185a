"""trials.csv rows from what Ray knows of a trial: one row per seed (`<ray trial id>-s<seed>`), with Ray's status,
the contract's train_status, the metrics the trial reported, how often Ray restarted it, and a failure's message.

A trial reports after every epoch but its last (each seed's validation metrics and the weights a stop now would be
scored with), then once with `final=True` and every seed's test metrics. So for each seed:
- `final` reported: it trained to its end; train_status is what training said (completed, early_stopped, diverged);
- Ray says ERROR (after every retry): train_status `error`, `message` the error's last line;
- otherwise Ray ended it after an epoch report (ASHA/HyperBand): `stopped_by_scheduler`, unless the seed had
  already stopped early or diverged, with the validation metrics of the weights it would be scored with
  (`weights_epoch`), the epochs reached, and no test metrics (`fusion-sweep run --score-stopped` adds them);
- no report at all and not an error: `unfinished` (an interrupted sweep; `--resume` continues it).
"""
from __future__ import annotations

from typing import Any

from sweep.tune.results import trial_row

# what Ray adds to every result, and the trial's own progress keys: never trials.csv columns
RAY_KEYS = ("final", "epoch", "done", "training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "pid",
            "hostname", "node_ip", "time_since_restore", "iterations_since_restore", "date", "checkpoint_dir_name",
            "should_checkpoint", "wall_seconds", "config", "experiment_tag", "seeds", "seeds_training",
            "checkpointed")
# what a seed's last epoch report gives its row when the trial ended before its final report
PARTIAL_KEYS = {"params": "params", "flops": "flops", "selected_val_accuracy": "val_accuracy",
                "selected_val_loss": "val_loss", "selected_epoch": "weights_epoch", "best_epoch": "best_epoch",
                "epoch": "epochs"}


def row_id(ray_trial_id: str, seed: int) -> str:
    """The trials.csv id of one seed of a Ray trial."""
    return f"{ray_trial_id}-s{int(seed)}"


def trial_seeds(trial: dict[str, Any]) -> list[int]:
    """The seeds a Ray trial trains (a trial description from sweep.tune.space.expand)."""
    return [int(s) for s in trial["seeds"]] if "seeds" in trial else [int(trial["seed"])]


def seeds_label(trial: dict[str, Any]) -> str:
    """'seed 3' or 'seeds 0,1,2', for progress lines."""
    seeds = trial_seeds(trial)
    return f"seed {seeds[0]}" if len(seeds) == 1 else "seeds " + ",".join(str(s) for s in seeds)


def error_line(error: object) -> str:
    """The last line of a failed trial's error (e.g. 'UsageError: unknown model ...'), at most 300 characters."""
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    return (lines[-1] if lines else "failed without an error message")[:300]


def rows_of_ended(trial, status: str | None = None) -> list[dict]:
    """The rows of a Ray Trial that ended (TERMINATED or ERROR); none for one still pending or running. `status`:
    how it ended where Ray has not set trial.status yet (its callbacks run before it does)."""
    status = status or trial.status
    if status not in ("TERMINATED", "ERROR"):
        return []
    error = error_line(trial.get_error()) if status == "ERROR" else None
    return rows_of_trial(trial.trial_id, status, trial.config, trial.last_result, error,
                         failures=int(getattr(trial, "num_failures", 0) or 0))


def rows_of_trial(ray_trial_id: str, status: str, config: dict, result: dict | None, error: str | None = None,
                  failures: int = 0) -> list[dict]:
    """The trials.csv rows of one Ray trial: `status` is Ray's (TERMINATED, ERROR), `result` its last report,
    `error` the last line of its error, `failures` how often Ray restarted it."""
    result = dict(result or {})
    trial, reported = config["trial"], result.get("seeds") or {}
    rows = []
    for seed in trial_seeds(trial):
        description = {k: v for k, v in trial.items() if k != "seeds"} | {"seed": seed}
        mine = dict(reported.get(str(seed)) or {})
        row = _final_row(ray_trial_id, status, description, mine) if result.get("final") else \
            _partial_row(ray_trial_id, status, description, mine, reported_at_all="epoch" in result)
        if status == "ERROR":
            row["train_status"] = "error"
            row["message"] = error or "failed without an error message"
        row["failures"] = failures
        for key in ("node_id", "resumed_from_epoch"):
            if result.get(key) is not None:
                row[key] = result[key]
        rows.append(row)
    return rows


def _final_row(ray_trial_id: str, status: str, description: dict, reported: dict) -> dict:
    row = trial_row(row_id(ray_trial_id, description["seed"]), status, description, reported)
    for key in RAY_KEYS:
        row.pop(key, None)
    return row


def _partial_row(ray_trial_id: str, status: str, description: dict, reported: dict, reported_at_all: bool) -> dict:
    """A seed whose trial ended before its final report: the validation metrics of the weights it would have been
    scored with and their epoch, the epoch it reached; its status `stopped_by_scheduler` (Ray ended it after some
    report) unless the seed had already stopped early or diverged, else `unfinished`."""
    row = trial_row(row_id(ray_trial_id, description["seed"]), status, description,
                    {column: reported[key] for key, column in PARTIAL_KEYS.items() if key in reported})
    seed_status = reported.get("train_status")
    if seed_status in ("early_stopped", "diverged"):
        row["train_status"] = seed_status
    else:
        row["train_status"] = "stopped_by_scheduler" if status == "TERMINATED" and reported_at_all else "unfinished"
    return row
