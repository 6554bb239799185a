"""Train and evaluate ONE model (no Ray): resumable from orbax checkpoints, writes the run's metrics files."""
from __future__ import annotations

import collections
import dataclasses
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from sweep.configs.schema import TrainConfig
from sweep.configs.io import config_differences, config_from_dict, config_to_dict
from sweep.engine.run_outputs import OUTPUT_FILES, write_json_atomic, write_run_outputs

MODELS = ("cnn", "resnet50v2", "fusion")
HISTORY_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
CONFIG_FILE = "config.json"


@dataclasses.dataclass
class Result:
    """What one run produced. metrics is exactly what metrics.json holds."""

    status: str  # "completed" | "early_stopped" | "diverged"
    metrics: dict
    history: list[dict]
    out_dir: Path | None


class ConfigMismatch(ValueError):
    """The out dir / checkpoint dir already holds a run of a different config."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; `last_epoch` finished epochs are saved in `checkpoint_dir`."""

    def __init__(self, last_epoch: int, checkpoint_dir: Path | None):
        super().__init__(f"interrupted after {last_epoch} finished epoch(s)")
        self.last_epoch = last_epoch
        self.checkpoint_dir = checkpoint_dir


def check_config(config: TrainConfig) -> None:
    """Fail fast, naming the value and the valid choices, on configs that cannot work."""
    from sweep.engine.steps import PRECISIONS, check_optim

    if config.model not in MODELS:
        raise ValueError(f"unknown model {config.model!r}; choose one of: {', '.join(MODELS)}")
    check_optim(config.optim)
    if config.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {config.precision!r}; choose one of: {', '.join(PRECISIONS)}")
    for name in ("batch_size", "eval_batch_size", "epochs"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    es = config.early_stopping
    if es is not None:
        if es.metric not in HISTORY_METRICS:
            raise ValueError(f"early stopping metric {es.metric!r} unknown; choose one of: {', '.join(HISTORY_METRICS)}")
        if es.mode not in ("max", "min"):
            raise ValueError(f"early stopping mode must be 'max' or 'min', got {es.mode!r}")
        if es.patience < 1:
            raise ValueError(f"early stopping patience must be >= 1, got {es.patience!r}")


def build_model(config: TrainConfig, num_classes: int, image_size: int):
    """The model of `config`, initialised from config.seed (params) and config.seed + 1 (dropout)."""
    import flax.nnx as nnx
    import jax.numpy as jnp

    from models.registry import build_model as registry_build

    spec = config.model
    if config.model == "fusion":
        spec = config.fusion.replace(num_classes=num_classes, image_size=image_size, channels=config.pipeline.channels)
    return registry_build(spec, num_classes=num_classes, image_size=image_size, channels=config.pipeline.channels,
                          resnet_head=config.resnet_head, rngs=nnx.Rngs(params=config.seed, dropout=config.seed + 1),
                          dtype=jnp.bfloat16 if config.precision == "bfloat16" else None,
                          bn_momentum=config.bn_momentum)


def model_label(config: TrainConfig) -> str:
    return config.fusion.label if config.model == "fusion" else config.model


# ---------------------------------------------------------------- out dir bookkeeping

def _config_paths(out_dir: Path | None, checkpoint_dir: Path | None) -> list[Path]:
    return [d / CONFIG_FILE for d in (out_dir, checkpoint_dir) if d is not None]


def _refuse_if_different(config_dict: dict, out_dir: Path | None, checkpoint_dir: Path | None) -> None:
    import json

    for path in _config_paths(out_dir, checkpoint_dir):
        if not path.is_file():
            continue
        try:
            old = json.loads(path.read_text())
        except ValueError:
            raise ConfigMismatch(f"{path} is not valid JSON; use --overwrite to start afresh") from None
        diff = config_differences(old, config_dict)
        if diff:
            where = out_dir if out_dir is not None else checkpoint_dir
            raise ConfigMismatch(
                f"{where} already holds a run with a different config:\n  " + "\n  ".join(diff[:12])
                + ("\n  ..." if len(diff) > 12 else "")
                + "\nrun with --overwrite (overwrite=True) to start afresh, or choose another out dir")
    if checkpoint_dir is not None and checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir()) \
            and not (checkpoint_dir / CONFIG_FILE).is_file():
        raise ConfigMismatch(f"{checkpoint_dir} holds files but no {CONFIG_FILE}; it is not a run of fusion-sweep "
                             "(use --overwrite to start afresh, or another out dir)")


def _clear(out_dir: Path | None, checkpoint_dir: Path | None) -> None:
    if checkpoint_dir is not None and checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)
    if out_dir is not None:
        for name in (*OUTPUT_FILES, CONFIG_FILE):
            (out_dir / name).unlink(missing_ok=True)


# ---------------------------------------------------------------- progress

class _Progress:
    """One line per epoch on stderr: steps, loss, accuracy, images/s, ETA (redrawn in place on a terminal)."""

    def __init__(self, enabled: bool, epochs: int, steps: int, batch_size: int):
        self.enabled, self.epochs, self.steps, self.batch_size = enabled, epochs, steps, batch_size
        self.tty = enabled and sys.stderr.isatty()
        self.last = 0.0

    def due(self) -> bool:
        return self.tty and time.perf_counter() - self.last > 1.0

    def update(self, epoch: int, step: int, totals: dict, start: float) -> None:
        self.last = time.perf_counter()
        elapsed = self.last - start
        count = max(float(totals["count"]), 1.0)
        rate = step * self.batch_size / max(elapsed, 1e-9)
        eta = (self.steps - step) * elapsed / max(step, 1)
        line = (f"epoch {epoch}/{self.epochs}  {step}/{self.steps} steps  loss {float(totals['loss_sum']) / count:.4f}"
                f"  acc {float(totals['correct']) / count:.3f}  {rate:.1f} img/s  ETA {_clock(eta)}")
        print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)

    def epoch_done(self, row: dict, best: bool) -> None:
        if not self.enabled:
            return
        line = (f"epoch {row['epoch']}/{self.epochs}  {self.steps}/{self.steps} steps  loss {row['loss']:.4f}"
                f"  acc {row['accuracy']:.3f}  val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy']:.3f}"
                f"  {row['images_per_second']:.1f} img/s  {row['seconds']:.1f}s" + ("  *best" if best else ""))
        print(("\r" if self.tty else "") + line.ljust(100), file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- evaluation

def _device_batches(batches, keys: tuple[str, ...], ahead: int = 2):
    """Copy batches to the device `ahead` steps before they are used, so transfers overlap the running step."""
    import jax

    pending: collections.deque = collections.deque()
    for batch in batches:
        pending.append(jax.device_put({k: batch[k] for k in keys if k in batch}))
        if len(pending) > ahead:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


def evaluate_split(eval_step, params, rest, split, pipeline, batch_size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(labels, probabilities, mean cross-entropy) over every example of `split`, in row order."""
    from data.pipeline import eval_batches

    outputs, valids, labels = [], [], []
    for batch in _device_batches(eval_batches(split, pipeline, batch_size=batch_size), ("image", "label", "valid")):
        outputs.append(eval_step(params, rest, batch))  # stays on device until the loop is done
        valids.append(batch["valid"])
        labels.append(batch["label"])
    if not outputs:
        return np.zeros((0,), np.int32), np.zeros((0, 0), np.float32), float("nan")
    valid = np.concatenate([np.asarray(v) for v in valids])
    ce = np.concatenate([np.asarray(o[0]) for o in outputs])[valid]
    probs = np.concatenate([np.asarray(o[1]) for o in outputs])[valid]
    return np.concatenate([np.asarray(x) for x in labels])[valid], probs, float(ce.mean())


# ---------------------------------------------------------------- training

@dataclasses.dataclass
class _Progression:
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


def train_and_evaluate(config: TrainConfig, *, out_dir: str | Path | None = None,
                       on_epoch: Callable[[int, dict], None] | None = None,
                       checkpoint_dir: str | Path | None = None, overwrite: bool = False, progress: bool = False,
                       prepared=None) -> Result:
    """Train `config`, evaluate the best weights on the test split, write the run's files into out_dir.

    checkpoint_dir defaults to out_dir/checkpoints; when it holds checkpoints of the same config, training
    continues after the last finished epoch (a different config is refused unless overwrite). on_epoch(epoch,
    metrics) runs after that epoch's checkpoint is on disk. `prepared` skips data.prepare(config.data)."""
    import jax
    import jax.numpy as jnp

    from data.pipeline import class_weights, steps_per_epoch, train_batches
    from sweep.engine.checkpoint import RunCheckpoints, flatten_arrays
    from sweep.engine.steps import init_totals, make_eval_step, make_optimizer, make_train_step, split_model

    check_config(config)
    out_dir = Path(out_dir) if out_dir is not None else None
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else (
        out_dir / "checkpoints" if out_dir is not None else None)
    config_dict = config_to_dict(config)
    if overwrite:
        _clear(out_dir, checkpoint_dir)
    else:
        _refuse_if_different(config_dict, out_dir, checkpoint_dir)

    if prepared is None:
        from data.builder import prepare

        prepared = prepare(config.data, progress=progress)
    classes = tuple(prepared.classes)
    num_classes = len(classes)
    train, val, test = prepared.split("train"), prepared.split("val"), prepared.split("test")
    if len(train) < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} is larger than the train split ({len(train)} images); "
                         f"use a batch size of at most {len(train)}")
    if len(val) == 0:
        raise ValueError("the validation split is empty; give the data a larger val fraction or more images")

    for path in _config_paths(out_dir, checkpoint_dir):
        write_json_atomic(path, config_dict)

    model = build_model(config, num_classes, prepared.image_size)
    eval_graph, _, _ = split_model(model, train=False)
    graphdef, params, rest = split_model(model, train=True)
    steps = steps_per_epoch(train, config.pipeline, config.batch_size, num_classes)
    tx = make_optimizer(config.optim, steps, config.epochs)
    opt_state = tx.init(params)
    weights = class_weights(train, num_classes) if config.pipeline.balance == "class_weight" else None
    train_step = make_train_step(graphdef, tx, config.pipeline, class_weights=weights, precision=config.precision,
                                 augment_cnn_only=config.augment_cnn_only)
    eval_step = make_eval_step(eval_graph, config.pipeline, precision=config.precision)
    template = {"params": params, "rest": rest, "opt": opt_state}

    es = config.early_stopping
    metric, mode = (es.metric, es.mode) if es else ("val_accuracy", "max")
    restore_best = bool(es and es.restore_best)
    run = _Progression()
    checkpoints = RunCheckpoints(checkpoint_dir) if checkpoint_dir is not None else None
    best_in_memory = None
    try:
        if checkpoints is not None and checkpoints.latest_epoch() is not None:
            latest = checkpoints.latest_epoch()
            meta = checkpoints.meta(latest)
            restored = _restore(template, _flat_sections(checkpoints.arrays(latest)))
            params, rest, opt_state = restored["params"], restored["rest"], restored["opt"]
            run = _Progression(**{k: meta[k] for k in ("epoch", "history", "best_epoch", "best_value", "wait", "stopped")})
            _say(progress, f"resuming after epoch {run.epoch} from {checkpoints.directory}")

        bar = _Progress(progress, config.epochs, steps, config.batch_size)
        keys = ("image", "label", "valid") + (("clean_image",) if config.augment_cnn_only else ())
        compile_seconds = 0.0
        first_step_done = False
        compiled_in_epoch = None  # (epoch, seconds, images) of the step that compiled, left out of images/s
        while run.epoch < config.epochs and not run.stopped:
            epoch = run.epoch + 1
            start = time.perf_counter()
            totals = init_totals()
            batches = train_batches(train, config.pipeline, batch_size=config.batch_size, seed=config.seed,
                                    epoch=epoch, num_classes=num_classes, with_clean=config.augment_cnn_only)
            for step, batch in enumerate(_device_batches(batches, keys), start=1):
                params, rest, opt_state, totals = train_step(params, rest, opt_state, totals, batch)
                if not first_step_done:
                    jax.block_until_ready(totals)
                    compile_seconds = time.perf_counter() - start
                    compiled_in_epoch = (epoch, compile_seconds, float(np.asarray(batch["valid"]).sum()))
                    first_step_done = True
                if bar.due():
                    host = jax.device_get(totals)
                    if host["bad_step"] >= 0:
                        break
                    bar.update(epoch, step, host, start)
            host = jax.device_get(totals)
            train_seconds = time.perf_counter() - start
            if host["bad_step"] >= 0:
                return _diverged(config, out_dir, run, epoch, int(host["bad_step"]), classes, progress)
            val_labels, val_probs, val_loss = evaluate_split(eval_step, params, rest, val, config.pipeline,
                                                             config.eval_batch_size)
            count = float(host["count"])
            steady_seconds, steady_images = train_seconds, count
            if compiled_in_epoch and compiled_in_epoch[0] == epoch and steps > 1:
                steady_seconds, steady_images = train_seconds - compiled_in_epoch[1], count - compiled_in_epoch[2]
            row = {
                "epoch": epoch, "loss": float(host["loss_sum"]) / count, "accuracy": float(host["correct"]) / count,
                "val_loss": val_loss, "val_accuracy": float(np.mean(val_probs.argmax(1) == val_labels)),
                "seconds": time.perf_counter() - start, "train_seconds": train_seconds, "images": count,
                "steady_seconds": steady_seconds, "steady_images": steady_images,
                "images_per_second": steady_images / max(steady_seconds, 1e-9),
            }
            if not math.isfinite(row["val_loss"]):
                return _diverged(config, out_dir, run, epoch, int(host["steps"]), classes, progress)
            run.history.append(row)
            run.epoch = epoch
            best = run.improved(row[metric], mode)
            if best:
                run.best_epoch, run.best_value, run.wait = epoch, row[metric], 0
                if checkpoints is None and restore_best:
                    best_in_memory = jax.tree.map(jnp.copy, (params, rest))
            else:
                run.wait += 1
                run.stopped = es is not None and run.wait >= es.patience
            if checkpoints is not None:
                meta = {**dataclasses.asdict(run), "classes": list(classes), "image_size": prepared.image_size,
                        "model": model_label(config), "data_fingerprint": prepared.fingerprint}
                checkpoints.save(epoch, {"params": flatten_arrays(params), "rest": flatten_arrays(rest),
                                         "opt": flatten_arrays(opt_state)}, meta, keep={run.best_epoch})
            bar.epoch_done(row, best)
            if on_epoch is not None:
                on_epoch(epoch, dict(row))
        if run.stopped:
            _say(progress, f"early stopping after epoch {run.epoch}: no {metric} improvement for {es.patience} epochs "
                           f"(best epoch {run.best_epoch})")

        weights_epoch = run.epoch
        if restore_best and run.best_epoch is not None and run.best_epoch != run.epoch:
            weights_epoch = run.best_epoch
            if checkpoints is not None:
                restored = _restore({"params": params, "rest": rest}, _flat_sections(checkpoints.arrays(run.best_epoch)))
                params, rest = restored["params"], restored["rest"]
            else:
                params, rest = best_in_memory
    except KeyboardInterrupt:
        raise TrainingInterrupted(run.epoch, checkpoints.directory if checkpoints else None) from None
    finally:
        if checkpoints is not None:
            checkpoints.close()

    import flax.nnx as nnx

    nnx.update(model, params, rest)
    model.eval()
    labels, probs, test_loss = evaluate_split(eval_step, params, rest, test, config.pipeline, config.eval_batch_size)
    status = "early_stopped" if run.stopped else "completed"
    metrics = _final_metrics(config, model, run, status, weights_epoch, labels, probs, test_loss, classes,
                             prepared.image_size, compile_seconds)
    from sweep.engine.metrics import classification_report_text

    report = classification_report_text(labels, probs, classes)
    if out_dir is not None:
        write_run_outputs(out_dir, metrics, report, run.history, title=f"{model_label(config)} (test)")
    return Result(status, metrics, run.history, out_dir)


def _flat_sections(saved: dict) -> dict:
    return {section: dict(values) for section, values in saved.items()}


def _restore(templates: dict, saved: dict) -> dict:
    """Each section of a checkpoint ('params', 'rest', 'opt') shaped like its template."""
    from sweep.engine.checkpoint import unflatten_arrays

    return {name: unflatten_arrays(template, saved[name]) for name, template in templates.items()}


def _diverged(config, out_dir, run: _Progression, epoch: int, step: int, classes, progress: bool) -> Result:
    metrics = {"status": "diverged", "epochs_run": run.epoch, "diverged_epoch": epoch, "diverged_step": step,
               "classes": list(classes), "model": model_label(config),
               "message": f"loss became NaN or inf at epoch {epoch}, step {step}; lower the learning rate "
                          f"(now {config.optim.learning_rate:g}) or use float32"}
    _say(progress, metrics["message"])
    if out_dir is not None:
        write_run_outputs(out_dir, metrics, None, run.history)
    return Result("diverged", metrics, run.history, out_dir)


def _final_metrics(config, model, run: _Progression, status: str, weights_epoch: int, labels, probs, test_loss,
                   classes, image_size: int, compile_seconds: float) -> dict:
    from models.profile import count_params, forward_flops, latency_ms
    from sweep.engine.metrics import classification_metrics

    best = run.history[run.best_epoch - 1] if run.best_epoch else run.history[-1]
    batch_shape = (1, image_size, image_size, config.pipeline.channels)
    counted = count_params(model)
    seconds = [row["seconds"] for row in run.history]
    images = sum(row.get("steady_images", 0.0) for row in run.history)
    train_seconds = sum(row.get("steady_seconds", 0.0) for row in run.history)
    metrics = {
        "status": status, "model": model_label(config), "epochs_run": run.epoch, "best_epoch": run.best_epoch,
        "weights_epoch": weights_epoch, "val_accuracy": best["val_accuracy"], "val_loss": best["val_loss"],
        "test_loss": test_loss,
    }
    metrics.update(classification_metrics(labels, probs, classes, prefix="test_"))
    metrics.update({
        "params": int(counted.total), "trainable_params": int(counted.trainable),
        "non_trainable_params": int(counted.non_trainable),
        "flops": float(forward_flops(model, batch_shape)), "latency_ms": float(latency_ms(model, batch_shape)),
        "image_size": image_size, "train_seconds": float(sum(seconds)),
        "seconds_per_epoch": float(np.mean(seconds)) if seconds else 0.0,
        "images_per_second": float(images / train_seconds) if train_seconds else 0.0,
        "compile_seconds": float(compile_seconds),
    })
    return metrics


# ---------------------------------------------------------------- loading a finished run

@dataclasses.dataclass
class LoadedRun:
    """A trained run: its model (eval mode, best weights), config and class names."""

    model: object
    config: TrainConfig
    classes: tuple[str, ...]
    image_size: int
    weights_epoch: int
    run_dir: Path

    def predict_fn(self, batch_size: int = 64) -> Callable[[np.ndarray], np.ndarray]:
        """images (N,H,W,1) float in [0,1] -> probabilities (N,K); one compilation for any N."""
        from sweep.engine.steps import make_predict_fn

        return make_predict_fn(self.model, self.config.pipeline, batch_size)


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild the model of a run folder and restore the weights its test metrics were computed with."""
    import json

    import flax.nnx as nnx

    from sweep.engine.checkpoint import RunCheckpoints
    from sweep.engine.steps import split_model

    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / "checkpoints" if (run_dir / "checkpoints").is_dir() else run_dir
    config_path = next((p for p in (run_dir / CONFIG_FILE, checkpoint_dir / CONFIG_FILE) if p.is_file()), None)
    if config_path is None:
        raise FileNotFoundError(f"{run_dir} is not a run folder: no {CONFIG_FILE} (expected from `fusion-sweep train`)")
    config = config_from_dict(json.loads(config_path.read_text()))
    checkpoints = RunCheckpoints(checkpoint_dir)
    try:
        latest = checkpoints.latest_epoch()
        if latest is None:
            raise FileNotFoundError(f"{checkpoint_dir} holds no finished epoch yet")
        meta = checkpoints.meta(latest)
        es = config.early_stopping
        epoch = meta["best_epoch"] if es and es.restore_best and meta.get("best_epoch") else latest
        classes = tuple(meta["classes"])
        model = build_model(config, len(classes), int(meta["image_size"]))
        _, params, rest = split_model(model, train=False)
        saved = _flat_sections(checkpoints.arrays(epoch))
        restored = _restore({"params": params, "rest": rest}, saved)
    finally:
        checkpoints.close()
    nnx.update(model, restored["params"], restored["rest"])
    model.eval()
    return LoadedRun(model, config, classes, int(meta["image_size"]), int(epoch), run_dir)


