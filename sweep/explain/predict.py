"""Predict wrappers SHAP calls: counting model evaluations, fixed-batch padding, bucketed batches, forward time."""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]  # (N,H,W,1) float32 in [0,1] -> (N,K) probabilities
DEFAULT_BATCH_SIZE = 64  # largest predict batch; SHAP's Partition explainer sends batches of 2, 4, 8, ...


class CountingPredict:
    """Wraps a predict function; counts the rows (model evaluations) and calls it saw."""

    def __init__(self, predict: Predict):
        self.predict = predict
        self.evals = 0
        self.calls = 0
        self.seconds = 0.0  # wall time inside the model: the rest of an explanation is SHAP's own

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        self.evals += len(x)
        self.calls += 1
        t0 = time.perf_counter()
        out = np.asarray(self.predict(x))
        self.seconds += time.perf_counter() - t0
        return out


def padded_predict(apply_batch: Callable[[Any], Any], batch_size: int) -> Predict:
    """A numpy predict that pads every call to exactly `batch_size` rows (chunking larger inputs), so the jitted
    `apply_batch` compiles once whatever batch sizes SHAP asks for. (Fallback for sweep.engine.steps.make_predict_fn.)"""

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        outs = []
        for start in range(0, len(x), batch_size):
            chunk = x[start:start + batch_size]
            n = len(chunk)
            if n < batch_size:
                chunk = np.concatenate([chunk, np.zeros((batch_size - n, *chunk.shape[1:]), chunk.dtype)])
            outs.append(np.asarray(apply_batch(chunk))[:n])
        return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)

    return predict


def bucket_sizes(max_batch: int, growth: int = 4) -> tuple[int, ...]:
    """Powers of `growth` up to max_batch (max_batch itself last), e.g. 1, 4, 16, 64."""
    if max_batch < 1 or growth < 2:
        raise ValueError(f"need max_batch >= 1 and growth >= 2, got {max_batch}, {growth}")
    sizes, b = [], 1
    while b < max_batch:
        sizes.append(b)
        b *= growth
    return tuple(sizes + [max_batch])


class BucketedPredict:
    """Routes each call to the smallest fixed-batch predictor that fits, so SHAP's geometric batches (2, 4, 8, ...)
    are padded at most `growth` x instead of all to the largest batch. One compile per bucket: growth 4 pads
    ~10% more rows than growth 2 at 300 evals but compiles half as many functions."""

    def __init__(self, make_predict: Callable[[int], Predict], max_batch: int = DEFAULT_BATCH_SIZE, growth: int = 4):
        self.max_batch = int(max_batch)
        self.sizes = bucket_sizes(self.max_batch, growth)
        self._make = make_predict
        self._predicts: dict[int, Predict] = {}

    def _for(self, size: int) -> Predict:
        if size not in self._predicts:
            self._predicts[size] = self._make(size)
        return self._predicts[size]

    def warm_up(self, image_shape: tuple[int, ...]) -> None:
        """Compile every bucket now, so no compile lands inside a timed explanation."""
        for size in self.sizes:
            self._for(size)(np.zeros((size, *image_shape), np.float32))

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        outs = []
        for start in range(0, len(x), self.max_batch):
            chunk = x[start:start + self.max_batch]
            size = next(s for s in self.sizes if s >= len(chunk))
            outs.append(np.asarray(self._for(size)(chunk))[:len(chunk)])
        return np.concatenate(outs)


def forward_seconds_per_image(predict: Predict, images: np.ndarray, batch_size: int, repeats: int = 3) -> float:
    """Best-of-`repeats` wall time of one full batch through `predict`, per image (compile excluded)."""
    images = np.asarray(images, np.float32)
    batch = np.resize(images, (batch_size, *images.shape[1:])).astype(np.float32)
    predict(batch)  # compile / warm caches
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.asarray(predict(batch))
        best = min(best, time.perf_counter() - t0)
    return best / batch_size
