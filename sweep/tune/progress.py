"""The driver's live view of a sweep: a status line per running row (epoch, step, loss, val accuracy, images/s,
ETA) from the progress board, a summary line per finished trial, a header with the sweep's state."""
from __future__ import annotations

import math
import time
from typing import Any, Callable

from ray.tune import Callback

from sweep.configs.naming import config_label
from sweep.tune.live_view import LiveView, clock, stamp, status_line
from sweep.tune.rows import seeds_label, trial_seeds


class Progress:
    """Feeds a LiveView from Ray Tune's callbacks and, every refresh, from the trials' posts to the board actor."""

    def __init__(self, total: int, metric: str = "test_accuracy", on_complete: Callable[[Any, str], None] | None = None,
                 board=None, view: LiveView | None = None, start: float | None = None):
        self.total, self.metric = total, metric
        self.start = start or time.time()
        self.running: set[str] = set()
        self.done: dict[str, str] = {}
        self.best: tuple[float, str] | None = None
        self.on_complete = on_complete
        self.board = board  # a sweep.tune.board.BoardClient, or None: then lines come from epoch results only
        self.view = view or LiveView()
        self.rows: dict[str, dict] = {}  # row key -> latest status; each names its Ray trial in "trial"

    def __getstate__(self):  # Ray pickles RunConfig callbacks into its experiment state
        return {**self.__dict__, "on_complete": None, "board": None, "view": None}

    def say(self, text: str) -> None:
        line = f"[{stamp(time.time() - self.start)}] {text}"
        if self.view is None:
            print(line, flush=True)
        else:
            self.view.say(line)

    def status(self) -> str:
        best = f"; best {self.metric} {self.best[0]:.3f} ({self.best[1]})" if self.best else ""
        return f"{len(self.done)}/{self.total} done, {len(self.running)} running{best}"

    def refresh(self, force: bool = False) -> None:
        """Redraw the running rows' lines if the view is due (a terminal: every ~2 s; a log: every ~30 s)."""
        if self.view is None or not (force or self.view.due()):
            return
        self._read_board()
        now = time.time()
        lines = [f"[{stamp(now - self.start)}] {self.status()}"]
        lines += ["  " + status_line(row.get("name", key), row, now) for key, row in sorted(self.rows.items())
                  if row.get("trial") in self.running]
        self.view.update(lines)

    def close(self) -> None:
        if self.view is not None:
            self.view.close()

    def _read_board(self) -> None:
        if self.board is None:
            return
        try:
            snapshot = self.board.snapshot()
        except Exception as err:  # the view must never stop the sweep
            self.board = None
            self.say(f"live progress falls back to per-epoch lines: the progress board failed "
                     f"({type(err).__name__}: {err})")
            return
        for key, row in snapshot.items():
            if row.get("trial") in self.running:
                self.rows[key] = {**self.rows.get(key, {}), **row}

    def _started(self, trial) -> None:
        self.running.add(trial.trial_id)
        self.rows.setdefault(trial.trial_id, {"trial": trial.trial_id, "name": _name(trial), "phase": "starting",
                                              "time": time.time()})

    def _epoch_result(self, trial, result: dict) -> None:
        """Ray's per-epoch result: enough for a line when no board post has arrived (or there is no board)."""
        row = self.rows.setdefault(trial.trial_id, {"trial": trial.trial_id, "name": _name(trial)})
        if not self.board:
            row.update(phase="training", time=time.time(), epochs=(trial.config.get("base") or {}).get("epochs"),
                       **{k: result[k] for k in ("epoch", "val_accuracy", "images_per_second") if k in result})

    def callback(self):
        progress = self

        class _ProgressCallback(Callback):
            def on_trial_start(self, iteration, trials, trial, **info):
                progress._started(trial)

            def on_trial_result(self, iteration, trials, trial, result, **info):
                progress._started(trial)
                if not result.get("final"):
                    progress._epoch_result(trial, result)

            def on_step_end(self, iteration, trials, **info):
                progress.refresh()

            def on_trial_complete(self, iteration, trials, trial, **info):
                progress._finish(trial, "TERMINATED")

            def on_trial_error(self, iteration, trials, trial, **info):
                progress._finish(trial, "ERROR")

            def on_experiment_end(self, trials, **info):
                progress.close()

        return _ProgressCallback()

    def _finish(self, trial, status: str) -> None:
        self.running.discard(trial.trial_id)
        self.done[trial.trial_id] = status
        self.rows = {k: v for k, v in self.rows.items() if v.get("trial") != trial.trial_id}
        if self.board is not None:
            self.board.forget_trial(trial.trial_id)
        result = trial.last_result or {}
        name = _name(trial)
        value = result.get(self.metric)
        if status == "TERMINATED" and isinstance(value, (int, float)) and not math.isnan(value):
            if self.best is None or value > self.best[0]:
                self.best = (float(value), name)
            mean = " (mean over seeds)" if len(trial_seeds(trial.config["trial"])) > 1 else ""
            detail = (f"{self.metric} {value:.3f}{mean}, val_acc {result.get('val_accuracy', math.nan):.3f}, "
                      f"{result.get('params', 0):,.0f} params, {_epochs(result)} "
                      f"epochs in {clock(result.get('wall_seconds', 0))}")
        else:
            detail = status.lower() if status != "TERMINATED" else f"stopped at epoch {result.get('epoch')}"
        self.say(f"done {name}: {detail} | {self.status()}")
        if self.on_complete:
            self.on_complete(trial, status)
        self.refresh(force=self.view is not None and self.view.interactive)


def _epochs(result: dict):
    for key in ("epochs", "epochs_run", "epoch"):
        if isinstance(result.get(key), (int, float)):
            return int(result[key])
    return "?"


def _name(trial) -> str:
    return f"{config_label(trial.config['trial'])} {seeds_label(trial.config['trial'])}"
