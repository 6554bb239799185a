"""How one seed's run ends: its metrics (metrics.json), report, history and per-image predictions in its run folder."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from models.profile import count_params, forward_flops, latency_ms
from sweep.configs.naming import config_label, config_of
from sweep.engine.evaluate import SplitPredictions, Weights
from sweep.engine.metrics import classification_metrics, classification_report_text, is_collapsed
from sweep.engine.predictions import predictions_frame, write_predictions
from sweep.engine.run_outputs import write_run_outputs
from sweep.engine.split_metrics import split_metrics
from sweep.init_sources import init_labels, row_init_columns

if TYPE_CHECKING:
    from sweep.engine.seed_run import SeedRun


@dataclasses.dataclass
class Result:
    """What one seed's run produced. metrics is exactly what metrics.json holds; predictions: its selected weights
    on each named evaluation split (None when it diverged)."""

    status: str  # "completed" | "early_stopped" | "diverged"
    metrics: dict
    history: list[dict]
    out_dir: Path | None
    predictions: object = None  # pandas DataFrame of the contract's predictions rows (sweep.engine.predictions)


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """What every seed of a configuration shares: its size and latency (measured once per run, not per seed)."""

    params: int
    trainable_params: int
    non_trainable_params: int
    flops: float
    latency_ms: float
    image_size: int

    @staticmethod
    def of(model, image_size: int, channels: int) -> "ModelFacts":
        batch_shape = (1, image_size, image_size, channels)
        counted = count_params(model)
        return ModelFacts(int(counted.total), int(counted.trainable), int(counted.non_trainable),
                          float(forward_flops(model, batch_shape)), float(latency_ms(model, batch_shape)), image_size)


def finished_result(seed: "SeedRun", classes: Sequence[str], facts: ModelFacts, weights_epoch: int, weights: Weights,
                    scored: Mapping[str, SplitPredictions], splits: Mapping[str, object]) -> Result:
    """A seed that trained to its end (or stopped early): metrics from `scored['test']` (and the columns of every
    external and counterfactual split), every file written."""
    status = "early_stopped" if seed.progress.stopped else "completed"
    test = scored["test"]
    metrics = final_metrics(seed, status, weights_epoch, test, classes, facts)
    ids = {name: split.ids for name, split in splits.items()}
    metrics.update(split_metrics(scored, ids, classes))  # ext_<NAME>_*, cf_<NAME>_*, shortcut_reliance
    groups = {name: getattr(split, "groups", None) for name, split in splits.items()}   # the split's patients
    predictions = predictions_frame(scored, ids, classes, groups)
    if seed.out_dir is not None:
        write_predictions(seed.out_dir, predictions)
        write_run_outputs(seed.out_dir, metrics, classification_report_text(test.labels, test.probs, classes),
                          seed.progress.history, title=f"{metrics['model']} seed {seed.seed} (test)")
    return Result(status, metrics, seed.progress.history, seed.out_dir, predictions)


def diverged_result(seed: "SeedRun", classes: Sequence[str], say: Callable[[str], None]) -> Result:
    """A seed whose loss stopped being finite: no test metrics, its message and where it happened."""
    config, (epoch, step) = seed.config, seed.diverged
    metrics = {"status": "diverged", "epochs_run": seed.progress.epoch, "diverged_epoch": epoch,
               "diverged_step": step, "classes": list(classes), "model": config_label(config_of(config)),
               "best_epoch": seed.progress.best_epoch, **init_columns(config),
               "message": f"loss became NaN or inf at epoch {epoch}, step {step}; lower the learning rate "
                          f"(now {config.optim.learning_rate:g}) or use float32"}
    say(metrics["message"])
    if seed.out_dir is not None:
        write_run_outputs(seed.out_dir, metrics, None, seed.progress.history)
    return Result("diverged", metrics, seed.progress.history, seed.out_dir)


def final_metrics(seed: "SeedRun", status: str, weights_epoch: int, test: SplitPredictions, classes: Sequence[str],
                  facts: ModelFacts) -> dict:
    """metrics.json of a seed: where it stopped, which weights, the test metrics, its size and speed."""
    progress = seed.progress
    selected = progress.history[weights_epoch - 1]  # validation, like test, of the weights the row reports
    seconds = [row["seconds"] for row in progress.history]
    images = sum(row.get("steady_images", 0.0) for row in progress.history)
    train_seconds = sum(row.get("steady_seconds", 0.0) for row in progress.history)
    compile_seconds = sum(row.get("train_seconds", 0.0) - row.get("steady_seconds", 0.0) for row in progress.history)
    metrics = {
        "status": status, "model": config_label(config_of(seed.config)), "epochs_run": progress.epoch,
        "best_epoch": progress.best_epoch, "weights_epoch": weights_epoch, "val_accuracy": selected["val_accuracy"],
        "val_loss": selected["val_loss"], "test_loss": test.loss, "test_n": int(len(test.labels)),
        "collapsed": is_collapsed(test.probs.argmax(1)) if len(test.labels) else False,
    }
    metrics.update(classification_metrics(test.labels, test.probs, classes, prefix="test_"))
    metrics.update({
        "params": facts.params, "trainable_params": facts.trainable_params,
        "non_trainable_params": facts.non_trainable_params, "flops": facts.flops, "latency_ms": facts.latency_ms,
        "image_size": facts.image_size, "train_seconds": float(sum(seconds)),
        "seconds_per_epoch": float(np.mean(seconds)) if seconds else 0.0,
        "images_per_second": float(images / train_seconds) if train_seconds else 0.0,
        "compile_seconds": float(compile_seconds),
    })
    metrics.update(init_columns(seed.config))
    return metrics


def init_columns(config) -> dict:
    """init_<backbone> of the backbones the model holds: scratch, imagenet or the file's sha256 prefix."""
    row = {"model": config.model, "cnn_cut": config.fusion.cnn_cut, "resnet_cut": config.fusion.resnet_cut,
           "backbone_a": config.fusion.backbone_a, "backbone_b": config.fusion.backbone_b}
    return {k: v for k, v in row_init_columns(row, init_labels(config.init)).items() if v is not None}
