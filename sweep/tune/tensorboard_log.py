"""TensorBoard event files for one row (configuration x seed), written into its trial folder so that
`tensorboard --logdir RESULTS` lists every row under trials/<row id>. Needs tensorboardX (the `track` extra)."""
from __future__ import annotations

import math
from pathlib import Path

EPOCH_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "images_per_second", "seconds")
FINAL_PREFIXES = ("test_", "ext_", "cf_", "shortcut_")


class RowBoard:
    """Scalars: step/{loss,accuracy} while an epoch runs, epoch/<metric> after each epoch, final/<metric> once."""

    def __init__(self, folder: str | Path, name: str):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(folder), flush_secs=10)
        self.writer.add_text("configuration", name, 0)

    def step(self, global_step: int, status: dict) -> None:
        for key in ("loss", "accuracy"):
            if _finite(status.get(key)):
                self.writer.add_scalar(f"step/{key}", float(status[key]), global_step)

    def epoch(self, epoch: int, metrics: dict) -> None:
        for key in EPOCH_KEYS:
            if _finite(metrics.get(key)):
                self.writer.add_scalar(f"epoch/{key}", float(metrics[key]), epoch)
        self.writer.flush()

    def final(self, epoch: int, metrics: dict) -> None:
        for key, value in metrics.items():
            if key.startswith(FINAL_PREFIXES) and _finite(value):
                self.writer.add_scalar(f"final/{key}", float(value), epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_row_board(folder: str | Path, name: str) -> RowBoard | None:
    """A RowBoard, or None when tensorboardX is not installed (the sweep runs the same without it)."""
    try:
        return RowBoard(folder, name)
    except ImportError:
        return None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
