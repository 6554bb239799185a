"""trials.csv rows from what Ray saw of a trial: one row per seed (`<ray trial id>-s<seed>`).

A trial's last report is its final one (every seed's metrics), an epoch report (a trial the scheduler stopped, or
one interrupted), or nothing (a trial that failed before it reported); each gives one row per seed of the trial.
"""
from __future__ import annotations

from typing import Any

from sweep.tune.results import trial_row

# what Ray adds to every result, never a trials.csv column
RAY_KEYS = ("final", "epoch", "done", "training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "pid",
            "hostname", "node_ip", "time_since_restore", "iterations_since_restore", "date", "checkpoint_dir_name",
            "should_checkpoint", "wall_seconds", "config", "experiment_tag", "seeds", "seeds_training")


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


def rows_of_trial(ray_trial_id: str, status: str, config: dict, result: dict | None,
                  error: str | None = None) -> list[dict]:
    """The trials.csv rows of one Ray trial: `status` is Ray's (TERMINATED, ERROR), `result` its last report."""
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
            if error:
                row["error"] = error
        if result.get("node_id"):
            row["node_id"] = result["node_id"]
        rows.append(row)
    return rows


def _final_row(ray_trial_id: str, status: str, description: dict, reported: dict) -> dict:
    row = trial_row(row_id(ray_trial_id, description["seed"]), status, description, reported)
    for key in RAY_KEYS:
        row.pop(key, None)
    return row


def _partial_row(ray_trial_id: str, status: str, description: dict, reported: dict, reported_at_all: bool) -> dict:
    """A seed whose trial ended before its final report: the validation accuracy of the weights it would have been
    scored with, the epoch it reached; its status `stopped_by_scheduler` (Ray ended it after some report) unless the
    seed had already stopped early or diverged, else `unfinished`."""
    row = trial_row(row_id(ray_trial_id, description["seed"]), status, description,
                    {k: reported[k] for k in ("params", "flops") if k in reported})
    row["val_accuracy"] = reported.get("selected_val_accuracy")
    row["epochs"] = reported.get("epoch")
    row["best_epoch"] = reported.get("best_epoch")
    seed_status = reported.get("train_status")
    if seed_status in ("early_stopped", "diverged"):
        row["train_status"] = seed_status
    else:
        row["train_status"] = "stopped_by_scheduler" if status == "TERMINATED" and reported_at_all else "unfinished"
    return row
