"""Train and evaluate one configuration for one or several seeds (no Ray): resumable, writes each seed's run files.

train_seeds reads top to bottom: each seed's run folder, the data, a _Run (the model, its compiled steps and the
seeds' TrainStates behind ONE compiled train step, vectorised or reused in turn: sweep.engine.seeds), each seed
resumed from its own checkpoint, then one epoch at a time for the seeds still training (train, validate, stop
early, checkpoint when due; a seed whose loss stops being finite is masked while its siblings go on), and finally
each seed's selected weights (config.weights: the best epoch's or the last's) scored on the named evaluation splits
(today: 'test') through evaluate_final. Every metric of a seed, validation included, comes from those weights;
`weights_epoch` says which epoch they are.
train_and_evaluate is the one-seed case.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import flax.nnx as nnx
import jax.numpy as jnp
import numpy as np

from data.builder import prepare
from data.pipeline import class_weights, steps_per_epoch, train_batches
from models.registry import BUILDABLE_NAMES, build_model
from sweep import UsageError
from sweep.configs.io import config_to_dict
from sweep.configs.naming import config_label, config_of
from sweep.configs.schema import PRECISIONS, TrainConfig
from sweep.engine.checkpoint import RunCheckpoints
from sweep.engine.evaluate import SplitPredictions, Weights, evaluate_splits
from sweep.engine.outcome import ModelFacts, diverged_result, finished_result
from sweep.engine.progress import EpochProgress
from sweep.engine.run_folder import prepare_folder, run_paths, write_config
from sweep.engine.seed_run import RunProgress, SeedRun
from sweep.engine.seeds import SEED_MODES, EpochTotals, SequentialSeeds, VmapSeeds, make_seed_steps
from sweep.engine.steps import check_optim, init_state, make_eval_step, make_optimizer, split_model

HISTORY_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
__all__ = ["Result", "RunProgress", "SEED_MODES", "TrainingInterrupted", "check_config", "evaluate_final",
           "init_model", "model_label", "train_and_evaluate", "train_seeds"]


@dataclasses.dataclass
class Result:
    """What one seed's run produced. metrics is exactly what metrics.json holds; predictions: its selected weights
    on each named evaluation split (None when it diverged)."""

    status: str  # "completed" | "early_stopped" | "diverged"
    metrics: dict
    history: list[dict]
    out_dir: Path | None
    predictions: object = None  # pandas DataFrame of the contract's predictions rows (sweep.engine.predictions)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; `last_epoch` finished epochs are saved in `checkpoint_dir`."""

    def __init__(self, last_epoch: int, checkpoint_dir: Path | None):
        super().__init__(f"interrupted after {last_epoch} finished epoch(s)")
        self.last_epoch = last_epoch
        self.checkpoint_dir = checkpoint_dir


def check_config(config: TrainConfig) -> None:
    """Fail fast with a UsageError naming the value and the valid choices, on configs that cannot work."""
    if config.model not in BUILDABLE_NAMES:
        raise UsageError(f"unknown model {config.model!r}; choose one of: {', '.join(BUILDABLE_NAMES)}")
    if config.model == "fusion":
        from models.fusion import check_branches

        try:
            check_branches(config.fusion)
        except ValueError as err:
            raise UsageError(str(err)) from None
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


# ---------------------------------------------------------------- the run in memory

@dataclasses.dataclass
class _Run:
    """One configuration in memory: its data, the model, the compiled steps and every seed's state and progress."""

    config: TrainConfig  # the first seed's; the seeds' configs differ only in `seed`
    prepared: object  # data.prepared.PreparedDataset
    model: nnx.Module  # the architecture (final evaluation loads a seed's weights into it)
    eval_step: Callable  # the single-model eval step (validation of sequential seeds, every final evaluation)
    seeds: list[SeedRun]
    states: SequentialSeeds | VmapSeeds
    steps: int  # per epoch
    bar: EpochProgress
    checkpoint_at: Callable[[int], bool] = lambda epoch: True  # besides each seed's last epoch, which always is

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.prepared.classes)

    def split(self, name: str):
        return self.prepared.split(name)

    def checkpoint_meta(self) -> dict:
        return {"classes": list(self.classes), "image_size": self.prepared.image_size,
                "model": model_label(self.config), "data_fingerprint": self.prepared.fingerprint}


def _check_splits(prepared, config: TrainConfig) -> None:
    train, val = prepared.split("train"), prepared.split("val")
    if len(train) < config.batch_size:
        raise UsageError(f"batch_size {config.batch_size} is larger than the train split ({len(train)} images); "
                         f"use a batch size of at most {len(train)}")
    if len(val) == 0:
        raise UsageError("the validation split is empty; give the data a larger val fraction or more images")


def _build_run(seeds: list[SeedRun], prepared, progress: bool, mode: str,
               on_step: Callable[[dict], None] | None = None) -> _Run:
    """Every seed's fresh (or resumed) state behind one compiled train step (eval mode's graph split off first)."""
    config, num_classes = seeds[0].config, len(prepared.classes)
    train = prepared.split("train")
    steps = steps_per_epoch(train, config.pipeline, config.batch_size, num_classes)
    tx = make_optimizer(config.optim, steps, config.epochs)
    bar = EpochProgress(progress, config.epochs, steps, config.batch_size, listener=on_step,
                        passes=len(seeds) if mode == "sequential" else 1)
    states, model = [], None
    for seed in seeds:
        model = init_model(seed.config, num_classes, prepared.image_size)
        eval_graph, _, _ = split_model(model, train=False)
        graphdef, params, rest = split_model(model, train=True)
        states.append(seed.resume(init_state(params, rest, tx), bar.say))
    eval_step = make_eval_step(eval_graph, config.pipeline)
    weights = class_weights(train, num_classes) if config.pipeline.balance == "class_weight" else None
    seed_steps = make_seed_steps(mode, states, graphdef=graphdef, eval_graph=eval_graph, tx=tx,
                                 pipeline=config.pipeline, class_weights=weights,
                                 augment_cnn_only=config.augment_cnn_only, eval_step=eval_step)
    return _Run(config, prepared, model, eval_step, seeds, seed_steps, steps, bar)


# ---------------------------------------------------------------- one epoch

def _train_epoch(run: _Run, epoch: int) -> dict[int, EpochTotals]:
    """Every train step of `epoch` for the seeds that have not trained it yet; their host totals by seed index
    (bad_step >= 0: that seed's loss stopped being finite)."""
    config = run.config
    batches = {i: train_batches(run.split("train"), config.pipeline, batch_size=config.batch_size, seed=seed.seed,
                                epoch=epoch, num_classes=len(run.classes), with_clean=config.augment_cnn_only)
               for i, seed in enumerate(run.seeds) if seed.training and seed.progress.epoch == epoch - 1}

    def monitor(step: int, totals: Callable[[], dict]) -> bool:
        if not run.bar.due():
            return False
        host = totals()
        if host["bad_step"] >= 0:
            return True
        run.bar.update(epoch, step, host)
        return False

    return run.states.train_epoch(batches, monitor)


def _history_row(epoch: int, trained: EpochTotals, val: SplitPredictions, start: float) -> dict:
    """A seed's history row: train loss/accuracy, validation of its current weights, images/s without the step
    that compiled (vectorised seeds share the epoch's seconds: their images/s add up to the program's)."""
    host, count = trained.totals, float(trained.totals["count"])
    steady_seconds, steady_images = trained.seconds, count
    if trained.compile is not None and count > trained.compile[1]:
        steady_seconds, steady_images = trained.seconds - trained.compile[0], count - trained.compile[1]
    return {
        "epoch": epoch, "loss": float(host["loss_sum"]) / count, "accuracy": float(host["correct"]) / count,
        "val_loss": val.loss, "val_accuracy": float(np.mean(val.probs.argmax(1) == val.labels)),
        "seconds": time.perf_counter() - start, "train_seconds": trained.seconds, "images": count,
        "steady_seconds": steady_seconds, "steady_images": steady_images,
        "images_per_second": steady_images / max(steady_seconds, 1e-9),
    }


def _run_epoch(run: _Run) -> int:
    """Train, validate and record the next epoch of every seed still behind it; the epoch number. A seed whose
    loss (or validation loss) stopped being finite is marked diverged; its siblings are not affected."""
    epoch = min(seed.progress.epoch for seed in run.seeds if seed.training) + 1
    start = time.perf_counter()
    trained = _train_epoch(run, epoch)
    val = run.states.validate(run.split("val"), run.config.pipeline, run.config.eval_batch_size, list(trained))
    for index, totals in trained.items():
        seed = run.seeds[index]
        if totals.totals["bad_step"] >= 0 or not math.isfinite(val[index].loss):
            bad_step = int(totals.totals["bad_step"])
            seed.diverged = (epoch, bad_step if bad_step >= 0 else int(totals.totals["steps"]))
            if len(run.seeds) > 1:
                run.bar.say(f"seed {seed.seed}: loss became NaN or inf at epoch {epoch}; its siblings go on")
            continue
        row = _history_row(epoch, totals, val[index], start)
        run.bar.epoch_done(row, seed.record(row, run.states.state(index), run.checkpoint_meta(),
                                            checkpoint_due=run.checkpoint_at(epoch)))
    return epoch


# ---------------------------------------------------------------- the run

def train_seeds(config: TrainConfig, seeds: Sequence[int], *, out_dirs: Sequence[str | Path | None],
                checkpoint_dirs: Sequence[str | Path | None] | None = None, mode: str = "sequential",
                on_epoch: Callable[[int, dict[int, dict]], None] | None = None,
                overwrite: bool = False, progress: bool = False, prepared=None,
                eval_splits: Callable[[object], dict] | None = None,
                checkpoint_at: Callable[[int], bool] | None = None,
                on_step: Callable[[dict], None] | None = None) -> list[Result]:
    """Train `config` once per seed in `seeds` (each seed's own run folder in out_dirs, its checkpoints in
    checkpoint_dirs, by default <out_dir>/checkpoints), as one vectorised program (mode 'vmap') or one compiled step reused for each seed in
    turn ('sequential'), then score each seed's selected weights and write its files. Results in `seeds` order.

    Every seed keeps one checkpoint, written after every epoch for which checkpoint_at(epoch) is true (default:
    every epoch) and always after its last one, and resumes from it; on_epoch(epoch, {seed: summary}) runs after
    the epoch's checkpoints are on disk, with every seed's SeedRun.summary(). `eval_splits(prepared)` names the evaluation
    splits ({'test': split, ...}; default the test split alone); `prepared` skips data.builder.prepare; on_step(status)
    every ~2 s within an epoch (epoch, step, steps, running loss and accuracy, images/s, seconds per step)."""
    if mode not in SEED_MODES:
        raise UsageError(f"unknown seed mode {mode!r}; choose one of: {', '.join(SEED_MODES)}")
    checkpoint_dirs = list(checkpoint_dirs) if checkpoint_dirs is not None else [None] * len(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or not len(out_dirs) == len(checkpoint_dirs) == len(seeds):
        raise UsageError(f"seeds must be distinct, at least one, with one out dir each; got {list(seeds)}")
    check_config(config)
    folders = [_seed_folder(config.replace(seed=int(seed)), out_dir, ckpt, overwrite)
               for seed, out_dir, ckpt in zip(seeds, out_dirs, checkpoint_dirs)]
    prepared = prepared if prepared is not None else prepare(config.data, progress=progress)
    _check_splits(prepared, config)
    seed_runs = []
    for seed_config, out_dir, ckpt in folders:
        write_config(config_to_dict(seed_config), out_dir, ckpt)
        seed_runs.append(SeedRun(seed_config, out_dir, RunCheckpoints(ckpt) if ckpt is not None else None))
    try:
        run = _build_run(seed_runs, prepared, progress, mode, on_step)
        if checkpoint_at is not None:
            run.checkpoint_at = checkpoint_at
        while any(seed.training for seed in run.seeds):
            epoch = _run_epoch(run)
            if on_epoch is not None:
                on_epoch(epoch, {seed.seed: seed.summary() for seed in run.seeds})
        selected = [None if seed.diverged else seed.selected_weights(run.states.state(i), run.bar.say)
                    for i, seed in enumerate(run.seeds)]
    except KeyboardInterrupt:
        first = seed_runs[0]
        raise TrainingInterrupted(first.checkpointed or 0, first.checkpoints.directory if first.checkpoints else None) \
            from None
    finally:
        for seed in seed_runs:
            if seed.checkpoints is not None:
                seed.checkpoints.close()
    return _finish(run, selected, eval_splits(prepared) if eval_splits else {"test": prepared.split("test")})


def _finish(run: _Run, selected: list, splits: dict) -> list[Result]:
    """Each seed's outcome: its selected weights scored on every evaluation split and its files written (a diverged
    seed: its message). Size and latency are measured once, on the first seed's weights."""
    results, facts = [], None
    for seed, choice in zip(run.seeds, selected):
        if choice is None:
            results.append(diverged_result(seed, run.classes, run.bar.say))
            continue
        scored = evaluate_final(run, choice[1], splits)  # also loads the weights into run.model
        facts = facts or ModelFacts.of(run.model, run.prepared.image_size, run.config.pipeline.channels)
        results.append(finished_result(seed, run.classes, facts, *choice, scored, splits))
    return results


def _seed_folder(config: TrainConfig, out_dir, checkpoint_dir,
                 overwrite: bool) -> tuple[TrainConfig, Path | None, Path | None]:
    """A seed's run folder made ready: refused if it holds another config's run, cleared with overwrite."""
    out_dir, checkpoint_dir = run_paths(out_dir, checkpoint_dir)
    prepare_folder(config_to_dict(config), out_dir, checkpoint_dir, overwrite)
    return config, out_dir, checkpoint_dir


def train_and_evaluate(config: TrainConfig, *, out_dir: str | Path | None = None,
                       on_epoch: Callable[[int, dict], None] | None = None,
                       checkpoint_dir: str | Path | None = None, overwrite: bool = False, progress: bool = False,
                       prepared=None, checkpoint_at: Callable[[int], bool] | None = None,
                       on_step: Callable[[dict], None] | None = None) -> Result:
    """Train `config` (one seed), evaluate the selected weights on the test split, write the run's files into out_dir.

    checkpoint_dir defaults to out_dir/checkpoints; when it holds a checkpoint of the same config, training
    continues after its epoch (a different config is refused unless overwrite). A checkpoint is written after every
    epoch for which checkpoint_at(epoch) is true (default: every epoch) and always after the last one. on_epoch(epoch,
    summary) runs after that epoch's checkpoint, if any, is on disk (SeedRun.summary()). `prepared` skips
    data.builder.prepare(config.data)."""
    relay = None if on_epoch is None else (lambda epoch, seeds: on_epoch(epoch, dict(seeds[config.seed])))
    return train_seeds(config, [config.seed], out_dirs=[out_dir], checkpoint_dirs=[checkpoint_dir], on_epoch=relay,
                       overwrite=overwrite, progress=progress, prepared=prepared, checkpoint_at=checkpoint_at,
                       on_step=on_step)[0]


def evaluate_final(run: _Run, weights: Weights, splits: dict) -> dict[str, SplitPredictions]:
    """The selected weights, loaded into the model, scored on each named evaluation split."""
    nnx.update(run.model, weights.params, weights.rest)
    run.model.eval()
    return evaluate_splits(run.eval_step, weights.params, weights.rest, splits, run.config.pipeline,
                           run.config.eval_batch_size)
