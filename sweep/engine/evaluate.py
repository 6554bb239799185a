"""Evaluate weights on named splits: per-example labels and probabilities, on device until the loop is done."""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Callable, Iterable, Mapping, NamedTuple

import jax
import numpy as np

from data.pipeline import eval_batches
from data.spec import PipelineSpec

EVAL_KEYS = ("image", "label", "valid")


class Weights(NamedTuple):
    """What evaluation needs of a train state: the params and the rest (BatchNorm statistics, RNG state)."""

    params: Any
    rest: Any


@dataclasses.dataclass
class SplitPredictions:
    """One split scored by one set of weights, in the split's row order (padded rows dropped)."""

    labels: np.ndarray  # (N,) int
    probs: np.ndarray  # (N, K) class probabilities
    loss: float  # mean cross-entropy (NaN for an empty split)


def device_batches(batches: Iterable[dict], keys: tuple[str, ...], ahead: int = 2):
    """Copy batches to the device `ahead` steps before they are used, so transfers overlap the running step."""
    pending: collections.deque = collections.deque()
    for batch in batches:
        pending.append(jax.device_put({k: batch[k] for k in keys if k in batch}))
        if len(pending) > ahead:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


def evaluate_split(eval_step: Callable, params, rest, split, pipeline: PipelineSpec,
                   batch_size: int) -> SplitPredictions:
    """Labels, probabilities and mean cross-entropy of `params`/`rest` over every example of `split`."""
    outputs, valids, labels = [], [], []
    for batch in device_batches(eval_batches(split, pipeline, batch_size=batch_size), EVAL_KEYS):
        outputs.append(eval_step(params, rest, batch))  # stays on device until the loop is done
        valids.append(batch["valid"])
        labels.append(batch["label"])
    if not outputs:
        return SplitPredictions(np.zeros((0,), np.int32), np.zeros((0, 0), np.float32), float("nan"))
    valid = np.concatenate([np.asarray(v) for v in valids])
    ce = np.concatenate([np.asarray(o[0]) for o in outputs])[valid]
    probs = np.concatenate([np.asarray(o[1]) for o in outputs])[valid]
    return SplitPredictions(np.concatenate([np.asarray(x) for x in labels])[valid], probs, float(ce.mean()))


def evaluate_splits(eval_step: Callable, params, rest, splits: Mapping[str, object], pipeline: PipelineSpec,
                    batch_size: int) -> dict[str, SplitPredictions]:
    """Each named split (e.g. {'test': ..., 'ext:other_hospital': ...}) scored by the same weights."""
    return {name: evaluate_split(eval_step, params, rest, split, pipeline, batch_size) for name, split in splits.items()}
