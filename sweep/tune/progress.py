"""The driver's live view of a sweep: one line per finished trial and a status line every few seconds."""
from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable

from ray.tune import Callback

from sweep.configs.naming import config_label
from sweep.tune.rows import seeds_label, trial_seeds


class Progress:
    """A compact live view for the driver: one line per finished trial, a status line every few seconds."""

    def __init__(self, total: int, metric: str = "test_accuracy", every: float = 10.0,
                 on_complete: Callable[[Any], None] | None = None):
        self.total, self.metric, self.every = total, metric, every
        self.start, self.last_line = time.time(), 0.0
        self.running: set[str] = set()
        self.done: dict[str, str] = {}
        self.best: tuple[float, str] | None = None
        self.on_complete = on_complete

    def _clock(self) -> str:
        s = int(time.time() - self.start)
        return f"{s // 60:02d}:{s % 60:02d}"

    def say(self, text: str) -> None:
        print(f"[{self._clock()}] {text}", file=sys.stdout, flush=True)

    def __getstate__(self):  # Ray pickles RunConfig callbacks into its experiment state
        state = self.__dict__.copy()
        state["on_complete"] = None
        return state

    def status(self) -> str:
        best = f"; best {self.metric} {self.best[0]:.3f} ({self.best[1]})" if self.best else ""
        return f"{len(self.done)}/{self.total} done, {len(self.running)} running{best}"

    def callback(self):
        progress = self

        class _ProgressCallback(Callback):
            def on_trial_start(self, iteration, trials, trial, **info):
                progress.running.add(trial.trial_id)

            def on_trial_result(self, iteration, trials, trial, result, **info):
                progress.running.add(trial.trial_id)
                if time.time() - progress.last_line > progress.every and not result.get("final"):
                    progress.last_line = time.time()
                    progress.say(f"{progress.status()} | {trial.trial_id} {config_label(trial.config['trial'])} "
                                 f"{seeds_label(trial.config['trial'])} epoch {result.get('epoch')} "
                                 f"val_acc {result.get('val_accuracy', float('nan')):.3f} (mean over seeds)")

            def on_step_end(self, iteration, trials, **info):
                if time.time() - progress.last_line > 3 * progress.every:  # a heartbeat while trials compile
                    progress.last_line = time.time()
                    progress.say(progress.status())

            def on_trial_complete(self, iteration, trials, trial, **info):
                progress._finish(trial, "TERMINATED")

            def on_trial_error(self, iteration, trials, trial, **info):
                progress._finish(trial, "ERROR")

        return _ProgressCallback()

    def _finish(self, trial, status: str) -> None:
        self.running.discard(trial.trial_id)
        self.done[trial.trial_id] = status
        result = trial.last_result or {}
        name = f"{config_label(trial.config['trial'])} {seeds_label(trial.config['trial'])}"
        value = result.get(self.metric)
        if status == "TERMINATED" and isinstance(value, (int, float)) and not math.isnan(value):
            if self.best is None or value > self.best[0]:
                self.best = (float(value), name)
            mean = " (mean over seeds)" if len(trial_seeds(trial.config["trial"])) > 1 else ""
            detail = f"{self.metric} {value:.3f}{mean}, {result.get('params', 0):,.0f} params"
        else:
            detail = status.lower() if status != "TERMINATED" else f"stopped at epoch {result.get('epoch')}"
        self.say(f"{trial.trial_id} {name}: {detail} | {self.status()}")
        self.last_line = time.time()
        if self.on_complete:
            self.on_complete(trial)
