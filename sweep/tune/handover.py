"""What a trial hands Ray in its checkpoints, and takes back when Ray restarts it (maybe on another node).

A Ray trial trains one configuration for several seeds; each seed has its own run folder. A checkpoint reported to
Ray is a folder with one `s<seed>/` per seed that mirrors part of that seed's run folder: its `checkpoints/` (ONE
checkpoint: the engine keeps one per seed) on the epochs the trial checkpoints, and at the end that and its result
files (metrics, history, per-image predictions). Ray copies it to its storage path and keeps the latest one per
trial, so the driver and any node can read it whether or not they share the results folder.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

from sweep.engine.predictions import PREDICTIONS_FILE

CHECKPOINTS = "checkpoints"
RESULT_FILES = ("config.json", "metrics.json", "history.csv", "classification_report.txt", PREDICTIONS_FILE)


def seed_folder(seed: int) -> str:
    return f"s{int(seed)}"


def saved_epoch(checkpoint_dir: Path) -> int | None:
    """The epoch of the checkpoint in a checkpoints folder (Orbax names each by its epoch), else None."""
    epochs = [int(p.name) for p in checkpoint_dir.iterdir() if p.name.isdigit()] if checkpoint_dir.is_dir() else []
    return max(epochs, default=None)


def _link_or_copy(source: str, target: str) -> None:
    """A hard link where the file system allows it (checkpoint files never change once written), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@contextlib.contextmanager
def staged(run_dirs: Mapping[int, Path], *, final: bool) -> Iterator[Path]:
    """A temporary folder holding, per seed, its checkpoint, and with `final=True` its result files too; deleted on
    exit (Ray has copied it by then: tune.report persists a checkpoint before it returns)."""
    root = Path(tempfile.mkdtemp(prefix="fusion-sweep-report-"))
    try:
        for seed, run_dir in run_dirs.items():
            target = root / seed_folder(seed)
            target.mkdir()
            if (run_dir / CHECKPOINTS).is_dir():
                shutil.copytree(run_dir / CHECKPOINTS, target / CHECKPOINTS, copy_function=_link_or_copy)
            for name in RESULT_FILES if final else ():
                if (run_dir / name).is_file():
                    _link_or_copy(str(run_dir / name), str(target / name))
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def take_back(checkpoint_dir: Path, run_dirs: Mapping[int, Path]) -> list[int]:
    """Copy what a Ray checkpoint holds for each seed into its run folder where the folder lacks it or holds an
    older checkpoint (a restart on a node that does not share the results folder, or after the folder was lost).
    The seeds that got something."""
    restored = []
    for seed, run_dir in run_dirs.items():
        source = Path(checkpoint_dir) / seed_folder(seed)
        if not source.is_dir():
            continue
        local = run_dir / CHECKPOINTS
        got = False
        theirs, mine = saved_epoch(source / CHECKPOINTS), saved_epoch(local)
        if theirs is not None and (mine is None or theirs > mine):
            shutil.rmtree(local, ignore_errors=True)
            shutil.copytree(source / CHECKPOINTS, local)
            got = True
        for name in RESULT_FILES:
            if (source / name).is_file() and not (run_dir / name).is_file():
                run_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / name, run_dir / name)
                got = True
        if got:
            restored.append(seed)
    return restored
