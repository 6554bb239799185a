"""A run folder's bookkeeping: config.json beside the results and checkpoints, refusing to mix two configs in one
folder, and clearing it for --overwrite."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from sweep import UsageError
from sweep.configs.io import config_differences
from sweep.engine.run_outputs import OUTPUT_FILES
from sweep.files import write_json_atomic

CONFIG_FILE = "config.json"


class ConfigMismatch(UsageError):
    """The out dir / checkpoint dir already holds a run of a different config."""


def run_paths(out_dir, checkpoint_dir) -> tuple[Path | None, Path | None]:
    """(out_dir, checkpoint_dir) as Paths; checkpoint_dir defaults to out_dir/checkpoints."""
    out_dir = Path(out_dir) if out_dir is not None else None
    if checkpoint_dir is not None:
        return out_dir, Path(checkpoint_dir)
    return out_dir, (out_dir / "checkpoints" if out_dir is not None else None)


def _config_paths(out_dir: Path | None, checkpoint_dir: Path | None) -> list[Path]:
    return [d / CONFIG_FILE for d in (out_dir, checkpoint_dir) if d is not None]


def prepare_folder(config_dict: dict, out_dir: Path | None, checkpoint_dir: Path | None, overwrite: bool) -> None:
    """With overwrite, remove what a previous run left; else refuse a folder that holds another config's run."""
    if overwrite:
        _clear(out_dir, checkpoint_dir)
    else:
        _refuse_if_different(config_dict, out_dir, checkpoint_dir)


def check_reusable(config_dict: dict, out_dir, checkpoint_dir=None) -> None:
    """ConfigMismatch now, before data or models are made, if `out_dir` holds a run of another config."""
    _refuse_if_different(config_dict, *run_paths(out_dir, checkpoint_dir))


def write_config(config_dict: dict, out_dir: Path | None, checkpoint_dir: Path | None) -> None:
    for path in _config_paths(out_dir, checkpoint_dir):
        write_json_atomic(path, config_dict)


def _refuse_if_different(config_dict: dict, out_dir: Path | None, checkpoint_dir: Path | None) -> None:
    for path in _config_paths(out_dir, checkpoint_dir):
        if not path.is_file():
            continue
        try:
            old = json.loads(path.read_text())
        except ValueError:
            raise ConfigMismatch(f"{path} is not valid JSON; use --overwrite to start afresh") from None
        diff = config_differences(old, config_dict)
        if diff:
            where = out_dir if out_dir is not None else checkpoint_dir
            raise ConfigMismatch(
                f"{where} already holds a run with a different config:\n  " + "\n  ".join(diff[:12])
                + ("\n  ..." if len(diff) > 12 else "")
                + "\nrun with --overwrite (overwrite=True) to start afresh, or choose another out dir")
    if checkpoint_dir is not None and checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir()) \
            and not (checkpoint_dir / CONFIG_FILE).is_file():
        raise ConfigMismatch(f"{checkpoint_dir} holds files but no {CONFIG_FILE}; it is not a run of fusion-sweep "
                             "(use --overwrite to start afresh, or another out dir)")


def _clear(out_dir: Path | None, checkpoint_dir: Path | None) -> None:
    if checkpoint_dir is not None and checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)
    if out_dir is not None:
        for name in (*OUTPUT_FILES, CONFIG_FILE):
            (out_dir / name).unlink(missing_ok=True)
