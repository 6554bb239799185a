"""Where Ray keeps a sweep's experiment state and checkpoints, and whether there is an interrupted sweep to resume
there: plain paths, no Ray, so `run --resume` is checked before any work."""
from __future__ import annotations

from pathlib import Path

from sweep import UsageError

EXPERIMENT = "sweep"  # Ray's experiment folder under the storage path
TUNER_STATE = "tuner.pkl"  # what Ray's Tuner.can_restore looks for in an experiment folder


def storage_for(out_dir: str, storage: str | None) -> str:
    """Where Ray keeps experiment state and checkpoints: --storage (NFS dir, s3://, gs://), else OUT/ray."""
    if storage:
        return storage if "://" in storage else str(Path(storage).expanduser().resolve())
    return str(Path(out_dir).resolve() / "ray")


def experiment_path(out_dir: str, storage: str | None) -> str:
    return storage_for(out_dir, storage).rstrip("/") + "/" + EXPERIMENT


# pyarrow filesystems Ray's storage_path accepts; anything else would fail only once Ray starts
REMOTE_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")


def check_storage(storage: str | None) -> None:
    """UsageError for a --storage URI whose scheme no filesystem of Ray's reads."""
    if storage and "://" in storage:
        scheme = storage.split("://", 1)[0].lower()
        if scheme not in REMOTE_SCHEMES:
            raise UsageError(f"--storage {storage}: unknown scheme {scheme!r}; use a shared folder or one of "
                             f"{', '.join(s + '://' for s in REMOTE_SCHEMES)}")


def check_resumable(out_dir: str | Path, storage: str | None) -> None:
    """UsageError when `run --resume` would find no sweep to continue. Remote storage (s3://, gs://) is left to Ray,
    which reads it once it runs."""
    path = experiment_path(str(out_dir), storage)
    if "://" in path or (Path(path) / TUNER_STATE).is_file():
        return
    where = f"--storage {storage}" if storage else f"--out {out_dir}"
    raise UsageError(f"--resume: {where} holds no interrupted sweep to continue (no {Path(path) / TUNER_STATE}); "
                     "run without --resume to start one")
