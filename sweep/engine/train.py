"""Train and evaluate ONE model (no Ray): resumable from checkpoints, writes the run's metrics files.

train_and_evaluate reads top to bottom: the run folder, the data, a _Run (model, compiled steps, one TrainState),
resume from the last checkpoint, then one epoch at a time (train, validate, stop early, checkpoint when due), take
the selected weights (config.weights: the best epoch's, kept in memory, or the last's), and evaluate them on the
named evaluation splits (today: 'test'). Every metric of the run, validation included, comes from those weights;
`weights_epoch` says which epoch they are.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Callable

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np

from data.builder import prepare
from data.pipeline import class_weights, steps_per_epoch, train_batches
from models.profile import count_params, forward_flops, latency_ms
from models.registry import MODEL_NAMES, build_model
from sweep import UsageError
from sweep.configs.io import config_to_dict
from sweep.configs.naming import config_label, config_of
from sweep.configs.schema import PRECISIONS, TrainConfig
from sweep.engine.checkpoint import RunCheckpoints
from sweep.engine.evaluate import (EVAL_KEYS, SplitPredictions, Weights, device_batches, evaluate_split,
                                   evaluate_splits)
from sweep.engine.metrics import classification_metrics, classification_report_text
from sweep.engine.progress import EpochProgress
from sweep.engine.run_folder import prepare_folder, run_paths, write_config
from sweep.engine.run_outputs import write_run_outputs
from sweep.engine.steps import (TrainState, check_optim, init_state, init_totals, make_eval_step, make_optimizer,
                                make_train_step, split_model)

HISTORY_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclasses.dataclass
class Result:
    """What one run produced. metrics is exactly what metrics.json holds."""

    status: str  # "completed" | "early_stopped" | "diverged"
    metrics: dict
    history: list[dict]
    out_dir: Path | None


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; `last_epoch` finished epochs are saved in `checkpoint_dir`."""

    def __init__(self, last_epoch: int, checkpoint_dir: Path | None):
        super().__init__(f"interrupted after {last_epoch} finished epoch(s)")
        self.last_epoch = last_epoch
        self.checkpoint_dir = checkpoint_dir


def check_config(config: TrainConfig) -> None:
    """Fail fast with a UsageError naming the value and the valid choices, on configs that cannot work."""
    if config.model not in MODEL_NAMES:
        raise UsageError(f"unknown model {config.model!r}; choose one of: {', '.join(MODEL_NAMES)}")
    check_optim(config.optim)
    if config.precision not in PRECISIONS:
        raise UsageError(f"unknown precision {config.precision!r}; choose one of: {', '.join(PRECISIONS)}")
    for name in ("batch_size", "eval_batch_size", "epochs"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise UsageError(f"{name} must be an int >= 1, got {value!r}")
    es = config.early_stopping
    if es is not None:
        if es.metric not in HISTORY_METRICS:
            raise UsageError(f"early stopping metric {es.metric!r} unknown; choose one of: {', '.join(HISTORY_METRICS)}")
        if es.mode not in ("max", "min"):
            raise UsageError(f"early stopping mode must be 'max' or 'min', got {es.mode!r}")
        if es.patience < 1:
            raise UsageError(f"early stopping patience must be >= 1, got {es.patience!r}")


def init_model(config: TrainConfig, num_classes: int, image_size: int):
    """The model of `config` with fresh weights from config.seed (params) and config.seed + 1 (dropout)."""
    spec = config.model
    if config.model == "fusion":
        spec = config.fusion.replace(num_classes=num_classes, image_size=image_size, channels=config.pipeline.channels)
    return build_model(spec, num_classes=num_classes, image_size=image_size, channels=config.pipeline.channels,
                       resnet_head=config.resnet_head, rngs=nnx.Rngs(params=config.seed, dropout=config.seed + 1),
                       dtype=jnp.bfloat16 if config.precision == "bfloat16" else None,
                       bn_momentum=config.bn_momentum)


def model_label(config: TrainConfig) -> str:
    return config_label(config_of(config))


# ---------------------------------------------------------------- one run in memory

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
class _Run:
    """One training run in memory: its config and data, the model, its compiled steps and the TrainState."""

    config: TrainConfig
    prepared: object  # data.prepared.PreparedDataset
    model: nnx.Module
    train_step: Callable
    eval_step: Callable
    state: TrainState
    steps: int  # per epoch
    checkpoints: RunCheckpoints | None
    bar: EpochProgress
    progress: RunProgress = dataclasses.field(default_factory=RunProgress)
    checkpoint_at: Callable[[int], bool] = lambda epoch: True  # besides the last epoch, which always checkpoints
    best_in_memory: Weights | None = None  # config.weights == "best": a copy of the best epoch's weights
    saved_epoch: int | None = None  # the epoch of the checkpoint on disk
    compiled: tuple[int, float, float] | None = None  # (epoch, seconds, images) of the step that compiled

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.prepared.classes)

    @property
    def monitor(self) -> tuple[str, str]:
        es = self.config.early_stopping
        return (es.metric, es.mode) if es else ("val_accuracy", "max")

    @property
    def finishing(self) -> bool:
        """Training ends after the current epoch: the epoch budget is spent or patience ran out."""
        return self.progress.epoch >= self.config.epochs or self.progress.stopped

    def split(self, name: str):
        return self.prepared.split(name)


def _check_splits(prepared, config: TrainConfig) -> None:
    train, val = prepared.split("train"), prepared.split("val")
    if len(train) < config.batch_size:
        raise UsageError(f"batch_size {config.batch_size} is larger than the train split ({len(train)} images); "
                         f"use a batch size of at most {len(train)}")
    if len(val) == 0:
        raise UsageError("the validation split is empty; give the data a larger val fraction or more images")


def _build_run(config: TrainConfig, prepared, checkpoint_dir: Path | None, progress: bool,
               checkpoint_at: Callable[[int], bool] | None = None,
               on_step: Callable[[dict], None] | None = None) -> _Run:
    """The model and its compiled steps (eval mode's graph split off before training mode's)."""
    num_classes = len(prepared.classes)
    train = prepared.split("train")
    model = init_model(config, num_classes, prepared.image_size)
    eval_graph, _, _ = split_model(model, train=False)
    graphdef, params, rest = split_model(model, train=True)
    steps = steps_per_epoch(train, config.pipeline, config.batch_size, num_classes)
    tx = make_optimizer(config.optim, steps, config.epochs)
    weights = class_weights(train, num_classes) if config.pipeline.balance == "class_weight" else None
    return _Run(config, prepared, model,
                make_train_step(graphdef, tx, config.pipeline, class_weights=weights,
                                augment_cnn_only=config.augment_cnn_only),
                make_eval_step(eval_graph, config.pipeline), init_state(params, rest, tx), steps,
                RunCheckpoints(checkpoint_dir) if checkpoint_dir is not None else None,
                EpochProgress(progress, config.epochs, steps, config.batch_size, listener=on_step),
                checkpoint_at=checkpoint_at or (lambda epoch: True))


def _resume(run: _Run) -> None:
    """Continue after the last checkpointed epoch, if there is one: arrays by name, and the run's progress."""
    latest = run.checkpoints.latest_epoch() if run.checkpoints is not None else None
    if latest is None:
        return
    meta = run.checkpoints.meta(latest)
    state = run.state
    restored = run.checkpoints.restore(latest, {"params": state.params, "rest": state.rest, "opt": state.opt_state})
    run.state = TrainState(restored["params"], restored["rest"], restored["opt"], state.totals)
    run.progress = RunProgress(**{k: meta[k] for k in ("epoch", "history", "best_epoch", "best_value", "wait",
                                                       "stopped")})
    run.saved_epoch = latest
    best = run.progress.best_epoch
    if run.config.weights == "best" and best is not None:
        weights = run.checkpoints.restore_weights(best, {"params": state.params, "rest": state.rest})
        if weights is None:
            raise UsageError(f"{run.checkpoints.directory} lacks the weights of its best epoch {best}; "
                             "rerun with --overwrite to train afresh")
        run.best_in_memory = Weights(weights["params"], weights["rest"])
    run.bar.say(f"resuming after epoch {run.progress.epoch} from {run.checkpoints.directory}")


# ---------------------------------------------------------------- one epoch

def _train_epoch(run: _Run, epoch: int, start: float) -> dict:
    """Every train step of `epoch`; the epoch's totals on the host (bad_step >= 0: the loss stopped being finite)."""
    config = run.config
    keys = EVAL_KEYS + (("clean_image",) if config.augment_cnn_only else ())
    batches = train_batches(run.split("train"), config.pipeline, batch_size=config.batch_size, seed=config.seed,
                            epoch=epoch, num_classes=len(run.classes), with_clean=config.augment_cnn_only)
    run.state = run.state._replace(totals=init_totals())
    for step, batch in enumerate(device_batches(batches, keys), start=1):
        run.state, _ = run.train_step(run.state, batch)
        if run.compiled is None:  # the first step compiles: time it apart from the steady rate
            jax.block_until_ready(run.state.totals)
            run.compiled = (epoch, time.perf_counter() - start, float(np.asarray(batch["valid"]).sum()))
        if run.bar.due():
            host = jax.device_get(run.state.totals)
            if host["bad_step"] >= 0:
                break
            run.bar.update(epoch, step, host, start)
    return jax.device_get(run.state.totals)


def _history_row(run: _Run, epoch: int, host: dict, start: float, train_seconds: float) -> dict:
    """The epoch's history row: train loss/accuracy, validation of the current weights, images/s without the
    compile step."""
    val = evaluate_split(run.eval_step, run.state.params, run.state.rest, run.split("val"), run.config.pipeline,
                         run.config.eval_batch_size)
    count = float(host["count"])
    steady_seconds, steady_images = train_seconds, count
    if run.compiled and run.compiled[0] == epoch and run.steps > 1:
        steady_seconds, steady_images = train_seconds - run.compiled[1], count - run.compiled[2]
    return {
        "epoch": epoch, "loss": float(host["loss_sum"]) / count, "accuracy": float(host["correct"]) / count,
        "val_loss": val.loss, "val_accuracy": float(np.mean(val.probs.argmax(1) == val.labels)),
        "seconds": time.perf_counter() - start, "train_seconds": train_seconds, "images": count,
        "steady_seconds": steady_seconds, "steady_images": steady_images,
        "images_per_second": steady_images / max(steady_seconds, 1e-9),
    }


def _record_epoch(run: _Run, row: dict) -> bool:
    """Append the row, update best/patience (keeping the best weights when they are the ones selected); True when
    this epoch is the best so far."""
    progress, (metric, mode) = run.progress, run.monitor
    es = run.config.early_stopping
    progress.history.append(row)
    progress.epoch = row["epoch"]
    best = progress.improved(row[metric], mode)
    if best:
        progress.best_epoch, progress.best_value, progress.wait = row["epoch"], row[metric], 0
        if run.config.weights == "best":
            run.best_in_memory = Weights(*jax.tree.map(jnp.copy, (run.state.params, run.state.rest)))
    else:
        progress.wait += 1
        progress.stopped = es is not None and progress.wait >= es.patience
    return best


def _save_checkpoint(run: _Run) -> bool:
    """When due (checkpoint_at(epoch), and always after the last epoch): this epoch's whole state, plus the best
    epoch's weights when those are selected and earlier, as the run's one checkpoint. True if one was written."""
    progress = run.progress
    if run.checkpoints is None or not (run.finishing or run.checkpoint_at(progress.epoch)):
        return False
    state = run.state
    sections = {"params": state.params, "rest": state.rest, "opt": state.opt_state}
    if run.best_in_memory is not None and progress.best_epoch != progress.epoch:
        sections.update(best_params=run.best_in_memory.params, best_rest=run.best_in_memory.rest)
    meta = {**dataclasses.asdict(progress), "classes": list(run.classes), "image_size": run.prepared.image_size,
            "model": model_label(run.config), "data_fingerprint": run.prepared.fingerprint}
    run.checkpoints.save(progress.epoch, sections, meta)
    run.saved_epoch = progress.epoch
    return True


def _run_epoch(run: _Run, on_epoch) -> tuple[int, int] | None:
    """Train, validate and record one epoch; (epoch, step) where the run diverged, else None."""
    epoch = run.progress.epoch + 1
    start = time.perf_counter()
    host = _train_epoch(run, epoch, start)
    if host["bad_step"] >= 0:
        return epoch, int(host["bad_step"])
    row = _history_row(run, epoch, host, start, time.perf_counter() - start)
    if not math.isfinite(row["val_loss"]):
        return epoch, int(host["steps"])
    run.bar.epoch_done(row, _record_epoch(run, row))
    checkpointed = _save_checkpoint(run)
    if on_epoch is not None:
        on_epoch(epoch, dict(row, checkpointed=checkpointed, final_epoch=run.finishing, **_selection_so_far(run)))
    return None


def _selection_so_far(run: _Run) -> dict:
    """The weights a run stopped now would be scored with: their epoch and its validation metrics."""
    progress = run.progress
    epoch = progress.best_epoch if run.config.weights == "best" and progress.best_epoch else progress.epoch
    row = progress.history[epoch - 1]
    return {"best_epoch": progress.best_epoch, "weights_epoch": epoch, "weights_val_accuracy": row["val_accuracy"],
            "weights_val_loss": row["val_loss"]}


def _selected_weights(run: _Run) -> tuple[int, Weights]:
    """(epoch, weights) every metric of the run comes from: config.weights' choice, the best or the last epoch."""
    progress, es = run.progress, run.config.early_stopping
    if progress.stopped:
        run.bar.say(f"early stopping after epoch {progress.epoch}: no {run.monitor[0]} improvement for "
                    f"{es.patience} epochs (best epoch {progress.best_epoch})")
    if run.config.weights == "best" and progress.best_epoch not in (None, progress.epoch):
        return progress.best_epoch, run.best_in_memory
    return progress.epoch, Weights(run.state.params, run.state.rest)


# ---------------------------------------------------------------- the run

def train_and_evaluate(config: TrainConfig, *, out_dir: str | Path | None = None,
                       on_epoch: Callable[[int, dict], None] | None = None,
                       checkpoint_dir: str | Path | None = None, overwrite: bool = False, progress: bool = False,
                       prepared=None, checkpoint_at: Callable[[int], bool] | None = None,
                       on_step: Callable[[dict], None] | None = None) -> Result:
    """Train `config`, evaluate the selected weights on the test split, write the run's files into out_dir.

    checkpoint_dir defaults to out_dir/checkpoints; when it holds a checkpoint of the same config, training
    continues after its epoch (a different config is refused unless overwrite). A checkpoint is written after
    every epoch for which checkpoint_at(epoch) is true (default: every epoch) and always after the last one.
    on_epoch(epoch, metrics) runs after that epoch's checkpoint, if any, is on disk; metrics is the epoch's history
    row plus `checkpointed` (a checkpoint of this epoch is on disk), `final_epoch` (training ends after it),
    `best_epoch`, and `weights_epoch` with `weights_val_accuracy`/`weights_val_loss`: the weights a run stopped now
    would be scored with. on_step(status) runs every ~2 s within an epoch (epoch, step, steps, running loss and
    accuracy, images/s, seconds per step). `prepared` skips data.builder.prepare(config.data)."""
    check_config(config)
    out_dir, checkpoint_dir = run_paths(out_dir, checkpoint_dir)
    config_dict = config_to_dict(config)
    prepare_folder(config_dict, out_dir, checkpoint_dir, overwrite)
    prepared = prepared if prepared is not None else prepare(config.data, progress=progress)
    _check_splits(prepared, config)
    write_config(config_dict, out_dir, checkpoint_dir)
    run = _build_run(config, prepared, checkpoint_dir, progress, checkpoint_at, on_step)
    try:
        _resume(run)
        while run.progress.epoch < config.epochs and not run.progress.stopped:
            diverged = _run_epoch(run, on_epoch)
            if diverged is not None:
                return _diverged(run, out_dir, *diverged)
        weights_epoch, weights = _selected_weights(run)
    except KeyboardInterrupt:
        raise TrainingInterrupted(run.saved_epoch or 0, run.checkpoints.directory if run.checkpoints else None) \
            from None
    finally:
        if run.checkpoints is not None:
            run.checkpoints.close()
    predictions = evaluate_final(run, weights, {"test": run.split("test")})
    return _finish(run, weights_epoch, predictions["test"], out_dir)


def evaluate_final(run: _Run, weights: Weights, splits: dict) -> dict[str, SplitPredictions]:
    """The selected weights, loaded into the model, scored on each named evaluation split."""
    nnx.update(run.model, weights.params, weights.rest)
    run.model.eval()
    return evaluate_splits(run.eval_step, weights.params, weights.rest, splits, run.config.pipeline,
                           run.config.eval_batch_size)


def _finish(run: _Run, weights_epoch: int, test: SplitPredictions, out_dir: Path | None) -> Result:
    status = "early_stopped" if run.progress.stopped else "completed"
    metrics = _final_metrics(run, status, weights_epoch, test)
    if out_dir is not None:
        write_run_outputs(out_dir, metrics, classification_report_text(test.labels, test.probs, run.classes),
                          run.progress.history, title=f"{model_label(run.config)} (test)")
    return Result(status, metrics, run.progress.history, out_dir)


def _diverged(run: _Run, out_dir: Path | None, epoch: int, step: int) -> Result:
    config = run.config
    metrics = {"status": "diverged", "epochs_run": run.progress.epoch, "diverged_epoch": epoch, "diverged_step": step,
               "classes": list(run.classes), "model": model_label(config),
               "message": f"loss became NaN or inf at epoch {epoch}, step {step}; lower the learning rate "
                          f"(now {config.optim.learning_rate:g}) or use float32"}
    run.bar.say(metrics["message"])
    if out_dir is not None:
        write_run_outputs(out_dir, metrics, None, run.progress.history)
    return Result("diverged", metrics, run.progress.history, out_dir)


def _final_metrics(run: _Run, status: str, weights_epoch: int, test: SplitPredictions) -> dict:
    progress, image_size = run.progress, run.prepared.image_size
    selected = progress.history[weights_epoch - 1]  # validation of the very weights the test metrics come from
    batch_shape = (1, image_size, image_size, run.config.pipeline.channels)
    counted = count_params(run.model)
    seconds = [row["seconds"] for row in progress.history]
    images = sum(row.get("steady_images", 0.0) for row in progress.history)
    train_seconds = sum(row.get("steady_seconds", 0.0) for row in progress.history)
    metrics = {
        "status": status, "model": model_label(run.config), "epochs_run": progress.epoch,
        "best_epoch": progress.best_epoch, "weights_epoch": weights_epoch,
        "val_accuracy": selected["val_accuracy"], "val_loss": selected["val_loss"], "test_loss": test.loss,
    }
    metrics.update(classification_metrics(test.labels, test.probs, run.classes, prefix="test_"))
    metrics.update({
        "params": int(counted.total), "trainable_params": int(counted.trainable),
        "non_trainable_params": int(counted.non_trainable),
        "flops": float(forward_flops(run.model, batch_shape)), "latency_ms": float(latency_ms(run.model, batch_shape)),
        "image_size": image_size, "train_seconds": float(sum(seconds)),
        "seconds_per_epoch": float(np.mean(seconds)) if seconds else 0.0,
        "images_per_second": float(images / train_seconds) if train_seconds else 0.0,
        "compile_seconds": float(run.compiled[1]) if run.compiled else 0.0,
    })
    return metrics
