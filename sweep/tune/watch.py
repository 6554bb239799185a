"""What a running trial shows besides Ray Tune's reports: status posts to the driver's progress board (the live view)
and TensorBoard event files in each seed's row folder. Neither may ever stop the training."""
from __future__ import annotations

from pathlib import Path

from sweep.tune.board import poster
from sweep.tune.tensorboard_log import open_row_board


class TrialWatch:
    """One Ray trial (a configuration and its seeds): one line on the live board under Ray's trial id, and one
    TensorBoard per seed (row) in RESULTS/trials/<row id>/. Step curves go to a board only when the trial trains
    one seed: with several, steps of different seeds interleave and would make one meaningless curve."""

    def __init__(self, trial_id: str, name: str, epochs: int, row_dirs: dict[int, Path]):
        self.key = trial_id
        self.post = poster()
        self.status = {"trial": trial_id, "name": name, "epochs": epochs, "phase": "starting"}
        self.boards = {seed: open_row_board(folder, f"{name} seed {seed}") for seed, folder in row_dirs.items()}
        self.post(self.key, self.status)

    def step(self, status: dict) -> None:
        """engine's on_step: epoch, step, steps, loss, accuracy, images/s, seconds per step."""
        self.status.update(status, phase="training")
        self.post(self.key, self.status)
        if len(self.boards) == 1:
            board = next(iter(self.boards.values()))
            if board:
                board.step((status["epoch"] - 1) * status["steps"] + status["step"], status)

    def epoch(self, epoch: int, summaries: dict[int, dict], mean_val_accuracy: float) -> None:
        """After an epoch of every seed: the live line shows the seeds' mean; each seed's board its own metrics."""
        last = epoch >= self.status["epochs"]
        speeds = [s["images_per_second"] for s in summaries.values() if s.get("images_per_second")]
        self.status.update(epoch=epoch, val_accuracy=mean_val_accuracy, step=self.status.get("steps"),
                           images_per_second=sum(speeds) / len(speeds) if speeds else None,
                           phase="testing" if last else "training")
        self.post(self.key, self.status)
        for seed, summary in summaries.items():
            if self.boards.get(seed):
                self.boards[seed].epoch(epoch, summary)

    def finish(self, finished: dict[int, tuple[dict, str]]) -> None:
        for seed, (metrics, _status) in finished.items():
            board = self.boards.get(seed)
            if board:
                board.final(int(metrics.get("epochs_run") or self.status.get("epoch") or 0), metrics)
                board.close()
