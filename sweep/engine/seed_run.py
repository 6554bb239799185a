"""One seed of a run: where its training stands, its checkpoints, and which weights its metrics come from.

A run trains one configuration for one or several seeds; each seed has its own SeedRun: its TrainConfig (the seed
set), its run folder and checkpoints, its progress (epochs, history, best epoch, early-stopping counters) and its
outcome (stopped early, diverged). Everything here is per seed, so seeds stop, diverge and resume independently.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
import jax.numpy as jnp

from sweep.configs.schema import TrainConfig
from sweep.engine.checkpoint import RunCheckpoints
from sweep.engine.evaluate import Weights
from sweep.engine.steps import TrainState


@dataclasses.dataclass
class RunProgress:
    """Everything besides arrays that a checkpoint must restore for an identical continuation."""

    epoch: int = 0  # finished epochs
    history: list = dataclasses.field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    wait: int = 0
    stopped: bool = False

    def improved(self, value: float, mode: str) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if mode == "max" else value < self.best_value


@dataclasses.dataclass
class SeedRun:
    """One seed of a run: its config, folders, checkpoints and where its training stands."""

    config: TrainConfig
    out_dir: Path | None
    checkpoints: RunCheckpoints | None
    progress: RunProgress = dataclasses.field(default_factory=RunProgress)
    best_in_memory: Weights | None = None  # without checkpoints: a copy of the best epoch's weights
    diverged: tuple[int, int] | None = None  # (epoch, step) where its loss stopped being finite

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def monitor(self) -> tuple[str, str]:
        es = self.config.early_stopping
        return (es.metric, es.mode) if es else ("val_accuracy", "max")

    @property
    def training(self) -> bool:
        """Still has epochs to train: not stopped early, not diverged, not at its last epoch."""
        return not self.progress.stopped and self.diverged is None and self.progress.epoch < self.config.epochs

    @property
    def train_status(self) -> str:
        """The contract's word for where this seed stands (`training` while it still has epochs to go)."""
        if self.diverged is not None:
            return "diverged"
        if self.progress.stopped:
            return "early_stopped"
        return "completed" if self.progress.epoch >= self.config.epochs else "training"

    def selected_epoch(self) -> int | None:
        """The epoch whose weights it would be scored with if it ended now (the best one when restoring it)."""
        es, progress = self.config.early_stopping, self.progress
        if es is not None and es.restore_best and progress.best_epoch is not None:
            return progress.best_epoch
        return progress.epoch or None

    def summary(self) -> dict:
        """Its latest history row with its status and best epoch so far (what a sweep reports after each epoch);
        `selected_val_accuracy`: the validation accuracy of the weights it would be scored with if it ended now."""
        last = dict(self.progress.history[-1]) if self.progress.history else {}
        selected = self.selected_epoch()
        return {**last, "epoch": self.progress.epoch, "train_status": self.train_status,
                "best_epoch": self.progress.best_epoch, "selected_epoch": selected,
                "selected_val_accuracy": self.progress.history[selected - 1]["val_accuracy"] if selected else None}

    def resume(self, state: TrainState, say) -> TrainState:
        """The state after its last checkpointed epoch (arrays by name, and its progress), if there is one."""
        latest = self.checkpoints.latest_epoch() if self.checkpoints is not None else None
        if latest is None:
            return state
        meta = self.checkpoints.meta(latest)
        restored = self.checkpoints.restore(latest, {"params": state.params, "rest": state.rest,
                                                     "opt": state.opt_state})
        self.progress = RunProgress(**{k: meta[k] for k in ("epoch", "history", "best_epoch", "best_value", "wait",
                                                            "stopped")})
        say(f"seed {self.seed}: resuming after epoch {self.progress.epoch} from {self.checkpoints.directory}")
        return TrainState(restored["params"], restored["rest"], restored["opt"], state.totals)

    def record(self, row: dict, state: TrainState, meta: dict) -> bool:
        """Append the epoch's row, update best/patience, checkpoint `state`; True when this epoch is the best."""
        progress, (metric, mode) = self.progress, self.monitor
        es = self.config.early_stopping
        progress.history.append(row)
        progress.epoch = row["epoch"]
        best = progress.improved(row[metric], mode)
        if best:
            progress.best_epoch, progress.best_value, progress.wait = row["epoch"], row[metric], 0
            if self.checkpoints is None and es is not None and es.restore_best:
                self.best_in_memory = Weights(*jax.tree.map(jnp.copy, (state.params, state.rest)))
        else:
            progress.wait += 1
            progress.stopped = es is not None and progress.wait >= es.patience
        if self.checkpoints is not None:
            self.checkpoints.save(row["epoch"], {"params": state.params, "rest": state.rest, "opt": state.opt_state},
                                  {**dataclasses.asdict(progress), **meta}, keep={progress.best_epoch})
        return best

    def selected_weights(self, state: TrainState, say) -> tuple[int, Weights]:
        """(epoch, weights) its metrics come from: the best epoch's when early stopping restores it."""
        progress, es = self.progress, self.config.early_stopping
        if progress.stopped:
            say(f"seed {self.seed}: early stopping after epoch {progress.epoch}: no {self.monitor[0]} improvement "
                f"for {es.patience} epochs (best epoch {progress.best_epoch})")
        current = Weights(state.params, state.rest)
        if not (es and es.restore_best and progress.best_epoch is not None and progress.best_epoch != progress.epoch):
            return progress.epoch, current
        if self.checkpoints is None:
            return progress.best_epoch, self.best_in_memory
        restored = self.checkpoints.restore(progress.best_epoch, {"params": current.params, "rest": current.rest})
        return progress.best_epoch, Weights(restored["params"], restored["rest"])
