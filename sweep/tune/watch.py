"""What a running row shows besides Ray Tune's reports: status posts to the driver's progress board (the live view)
and TensorBoard event files in its own folder. Neither may ever stop the training."""
from __future__ import annotations

from pathlib import Path

from sweep.tune.board import poster
from sweep.tune.tensorboard_log import open_row_board


class RowWatch:
    """One row (configuration x seed) of a trial: `key` is its trials.csv id, `trial_id` Ray's trial."""

    def __init__(self, key: str, trial_id: str, name: str, epochs: int, folder: Path):
        self.key = key
        self.post = poster()
        self.status = {"trial": trial_id, "name": name, "epochs": epochs, "phase": "starting"}
        self.board = open_row_board(folder, name)
        self.post(key, self.status)

    def step(self, status: dict) -> None:
        """engine's on_step: epoch, step, steps, loss, accuracy, images/s, seconds per step."""
        self.status.update(status, phase="training")
        self.post(self.key, self.status)
        if self.board:
            self.board.step((status["epoch"] - 1) * status["steps"] + status["step"], status)

    def epoch(self, epoch: int, metrics: dict) -> None:
        last = epoch >= self.status["epochs"]
        self.status.update(epoch=epoch, val_accuracy=metrics.get("val_accuracy"), step=self.status.get("steps"),
                           images_per_second=metrics.get("images_per_second"), phase="testing" if last else "training")
        self.post(self.key, self.status)
        if self.board:
            self.board.epoch(epoch, metrics)

    def finish(self, metrics: dict) -> None:
        if self.board:
            self.board.final(int(metrics.get("epochs_run") or self.status.get("epoch") or 0), metrics)
            self.board.close()
