"""One seed of a run: where its training stands, its checkpoint, and which weights its metrics come from.

A run trains one configuration for one or several seeds; each seed has its own SeedRun: its TrainConfig (the seed
set), its run folder and checkpoint, its progress (epochs, history, best epoch, early-stopping counters) and its
outcome (stopped early, diverged). Everything here is per seed, so seeds stop, diverge and resume independently.

One set of weights per seed: config.weights selects the best epoch's (by the early-stopping metric; kept in memory
as a copy) or the last epoch's, and every metric of the seed, validation included, comes from them. A seed keeps
ONE checkpoint on disk, written when the run's checkpoint schedule says so and always after its last epoch; it
carries the best epoch's weights too when those are selected and earlier (sweep.engine.checkpoint).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
import jax.numpy as jnp

from sweep import UsageError
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
    best_in_memory: Weights | None = None  # config.weights == "best": a copy of the best epoch's weights
    checkpointed: int | None = None  # the epoch of its checkpoint on disk
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
        """The epoch whose weights it would be scored with if it ended now (config.weights: the best or the last)."""
        progress = self.progress
        if self.config.weights == "best" and progress.best_epoch is not None:
            return progress.best_epoch
        return progress.epoch or None

    def summary(self) -> dict:
        """Its latest history row with its status and best epoch so far (what a sweep reports after each epoch);
        `selected_epoch` and `selected_val_accuracy`/`selected_val_loss`: the epoch and validation of the weights it
        would be scored with if it ended now; `checkpointed`: a checkpoint of its latest epoch is on disk."""
        last = dict(self.progress.history[-1]) if self.progress.history else {}
        selected = self.selected_epoch()
        row = self.progress.history[selected - 1] if selected else {}
        return {**last, "epoch": self.progress.epoch, "train_status": self.train_status,
                "best_epoch": self.progress.best_epoch, "selected_epoch": selected,
                "selected_val_accuracy": row.get("val_accuracy"), "selected_val_loss": row.get("val_loss"),
                "checkpointed": bool(self.progress.epoch) and self.checkpointed == self.progress.epoch}

    def resume(self, state: TrainState, say) -> TrainState:
        """The state after its checkpointed epoch (arrays by name, its progress, the selected best weights), if any."""
        latest = self.checkpoints.latest_epoch() if self.checkpoints is not None else None
        if latest is None:
            return state
        meta = self.checkpoints.meta(latest)
        restored = self.checkpoints.restore(latest, {"params": state.params, "rest": state.rest,
                                                     "opt": state.opt_state})
        self.progress = RunProgress(**{k: meta[k] for k in ("epoch", "history", "best_epoch", "best_value", "wait",
                                                            "stopped")})
        self.checkpointed = latest
        best = self.progress.best_epoch
        if self.config.weights == "best" and best is not None:
            weights = self.checkpoints.restore_weights(best, {"params": state.params, "rest": state.rest})
            if weights is None:
                raise UsageError(f"{self.checkpoints.directory} lacks the weights of its best epoch {best}; "
                                 "rerun with --overwrite to train afresh")
            self.best_in_memory = Weights(weights["params"], weights["rest"])
        say(f"seed {self.seed}: resuming after epoch {self.progress.epoch} from {self.checkpoints.directory}")
        return TrainState(restored["params"], restored["rest"], restored["opt"], state.totals)

    def record(self, row: dict, state: TrainState, meta: dict, checkpoint_due: bool = True) -> bool:
        """Append the epoch's row, update best/patience (copying the best weights when those are selected), and
        checkpoint `state` when `checkpoint_due` or training ends after this epoch; True when this epoch is the best."""
        progress, (metric, mode) = self.progress, self.monitor
        es = self.config.early_stopping
        progress.history.append(row)
        progress.epoch = row["epoch"]
        best = progress.improved(row[metric], mode)
        if best:
            progress.best_epoch, progress.best_value, progress.wait = row["epoch"], row[metric], 0
            if self.config.weights == "best":
                self.best_in_memory = Weights(*jax.tree.map(jnp.copy, (state.params, state.rest)))
        else:
            progress.wait += 1
            progress.stopped = es is not None and progress.wait >= es.patience
        if self.checkpoints is not None and (checkpoint_due or not self.training):
            self._save(state, meta)
        return best

    def _save(self, state: TrainState, meta: dict) -> None:
        """Its one checkpoint: this epoch's whole state, plus the best epoch's weights when selected and earlier."""
        progress = self.progress
        sections = {"params": state.params, "rest": state.rest, "opt": state.opt_state}
        if self.best_in_memory is not None and progress.best_epoch != progress.epoch:
            sections.update(best_params=self.best_in_memory.params, best_rest=self.best_in_memory.rest)
        self.checkpoints.save(progress.epoch, sections, {**dataclasses.asdict(progress), **meta})
        self.checkpointed = progress.epoch

    def selected_weights(self, state: TrainState, say) -> tuple[int, Weights]:
        """(epoch, weights) every metric of the seed comes from: config.weights' choice, the best or the last epoch."""
        progress, es = self.progress, self.config.early_stopping
        if progress.stopped:
            say(f"seed {self.seed}: early stopping after epoch {progress.epoch}: no {self.monitor[0]} improvement "
                f"for {es.patience} epochs (best epoch {progress.best_epoch})")
        if self.config.weights == "best" and progress.best_epoch not in (None, progress.epoch):
            return progress.best_epoch, self.best_in_memory
        return progress.epoch, Weights(state.params, state.rest)
