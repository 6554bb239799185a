"""The results contract of a sweep: the trials table (CSV + Parquet) and manifest.json (how it was made)."""
from __future__ import annotations

import dataclasses
import datetime
import io
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from sweep import runtime
from sweep.configs.naming import CONFIG_KEYS
from sweep.files import write_bytes_atomic, write_text_atomic

BASE_COLUMNS = (
    "trial_id", "status", "model", "cnn_cut", "resnet_cut", "branch_width", "head_width", "seed", "image_size",
    "params", "trainable_params", "non_trainable_params", "flops", "latency_ms", "train_status", "epochs",
    "best_epoch", "weights_epoch", "train_seconds", "val_accuracy", "test_n", "test_accuracy",
    "test_balanced_accuracy", "test_auc", "collapsed",
)
PAIR_COLUMNS = ("backbone_a", "backbone_b", "cut_a", "cut_b", "merge")  # merge: only `concat` sweeps have it
# metric key in train_and_evaluate's Result.metrics -> trials.csv column, where they differ
RENAMES = {"epochs_run": "epochs"}


def trial_row(trial_id: str, status: str, trial: dict[str, Any], metrics: dict[str, Any] | None) -> dict[str, Any]:
    """One trials.csv row from a trial description and the metrics its training reported (may be partial)."""
    metrics = dict(metrics or {})
    row: dict[str, Any] = {"trial_id": trial_id, "status": status}
    for key in (*CONFIG_KEYS, "seed"):
        row[key] = trial.get(key)
    for key in PAIR_COLUMNS:  # fusions of another pair than the seed's
        if key in trial:
            row[key] = trial[key]
    for key, value in metrics.items():
        column = RENAMES.get(key, key)
        if column.startswith("test_recall_") or column.startswith("test_precision_"):
            column = column[len("test_"):]  # recall_<class>, precision_<class>
        if column in ("status", "trial_id", "classes") or isinstance(value, (dict, list, tuple)):
            continue
        row.setdefault(column, value)
    return row


def trials_frame(rows: list[dict[str, Any]]):
    """A DataFrame with the contract's columns first (missing ones empty), then per-class and extra columns."""
    frame = pd.DataFrame(rows)
    for column in BASE_COLUMNS:
        if column not in frame:
            frame[column] = None
    per_class = sorted(c for c in frame.columns if c.startswith(("recall_", "precision_")))
    extra = sorted(c for c in frame.columns if c not in BASE_COLUMNS and c not in per_class)
    frame = frame[list(BASE_COLUMNS) + per_class + extra]
    return frame.sort_values(["seed", "trial_id"], kind="stable").reset_index(drop=True)


def write_trials(frame, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """trials.csv and trials.parquet into out_dir, atomically."""
    out_dir = Path(out_dir)
    csv_path = write_text_atomic(out_dir / "trials.csv", frame.to_csv(index=False))
    buffer = io.BytesIO()
    frame.astype({c: "string" for c in ("cnn_cut", "resnet_cut", "cut_a", "cut_b") if c in frame}).to_parquet(
        buffer, index=False)
    parquet_path = write_bytes_atomic(out_dir / "trials.parquet", buffer.getvalue())
    return csv_path, parquet_path


def stored_trials(results_dir: str | os.PathLike):
    """The trials table of a results folder as stored (Parquet when present, else CSV); None when it has neither."""
    results_dir = Path(results_dir)
    if (results_dir / "trials.parquet").is_file():
        return pd.read_parquet(results_dir / "trials.parquet")
    if (results_dir / "trials.csv").is_file():
        return pd.read_csv(results_dir / "trials.csv")
    return None


def read_trials(results_dir: str | os.PathLike):
    """The trials table of a results folder (Parquet when present, else CSV), its cut columns None where absent."""
    frame = stored_trials(results_dir)
    if frame is None:
        raise FileNotFoundError(f"{results_dir} has no trials.csv or trials.parquet; is it a `fusion-sweep run` --out folder?")
    for column in ("cnn_cut", "resnet_cut"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def _hardware(cluster_resources: dict | None) -> dict[str, Any]:
    hardware = runtime.hardware()
    if cluster_resources:
        hardware["ray_cluster_resources"] = {k: v for k, v in cluster_resources.items() if not k.startswith("node:")}
    return hardware


def manifest(sweep_config, *, data_fingerprint: str | None, command: list[str] | None = None,
             cluster_resources: dict | None = None, wall_seconds: float | None = None,
             extra: dict | None = None, git: dict | None = None) -> dict[str, Any]:
    """Everything needed to say how a results folder was made. `git`: runtime.git_state() as taken before the run
    wrote anything (taken now when not given)."""
    git = runtime.git_state() if git is None else git
    return {
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "sweep_config": dataclasses.asdict(sweep_config) if dataclasses.is_dataclass(sweep_config) else sweep_config,
        "data_fingerprint": data_fingerprint,
        "git_commit": runtime.git_commit(git) if git else None,
        "git_changed": git["changed"] if git else None,
        "versions": runtime.versions(),
        "hardware": _hardware(cluster_resources),
        "wall_seconds": wall_seconds,
        **(extra or {}),
    }


def read_manifest(results_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(results_dir) / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}
