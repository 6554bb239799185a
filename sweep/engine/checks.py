"""A training config checked before any work: plain Python (no JAX), so a command refuses a bad value at once, and
the engine checks the same way again where it starts training."""
from __future__ import annotations

from models.registry import BUILDABLE_NAMES
from sweep import UsageError
from sweep.configs.schema import PRECISIONS, OptimConfig, TrainConfig

OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
HISTORY_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
NORMALIZATIONS = ("auto", "unit", "symmetric")


def check_optim(optim: OptimConfig) -> None:
    """Raise UsageError naming the bad field and the valid choices (called before any expensive work)."""
    if optim.name not in OPTIMIZERS:
        raise UsageError(f"unknown optimiser {optim.name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if optim.schedule not in SCHEDULES:
        raise UsageError(f"unknown learning-rate schedule {optim.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if not optim.learning_rate > 0:
        raise UsageError(f"learning_rate must be > 0, got {optim.learning_rate!r}")
    if optim.warmup_epochs < 0:
        raise UsageError(f"warmup_epochs must be >= 0, got {optim.warmup_epochs!r}")


def check_config(config: TrainConfig) -> None:
    """Fail fast with a UsageError naming the value and the valid choices, on configs that cannot work (the
    config alone: files it names, data or --init weights, are checked by the commands that read them)."""
    if config.model not in BUILDABLE_NAMES:
        raise UsageError(f"unknown model {config.model!r}; choose one of: {', '.join(BUILDABLE_NAMES)}")
    if config.model == "fusion":
        from models.fusion_checks import check_branches

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
    if config.pipeline.normalization not in NORMALIZATIONS:
        raise UsageError(f"normalization must be one of {', '.join(NORMALIZATIONS)}; "
                         f"got {config.pipeline.normalization!r}")
    es = config.early_stopping
    if es is not None:
        if es.metric not in HISTORY_METRICS:
            raise UsageError(f"early stopping metric {es.metric!r} unknown; choose one of: {', '.join(HISTORY_METRICS)}")
        if es.mode not in ("max", "min"):
            raise UsageError(f"early stopping mode must be 'max' or 'min', got {es.mode!r}")
        if es.patience < 1:
            raise UsageError(f"early stopping patience must be >= 1, got {es.patience!r}")
