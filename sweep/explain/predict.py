"""Predict wrappers SHAP calls: counting model evaluations, fixed-batch padding, forward time per image."""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]  # (N,H,W,1) float32 in [0,1] -> (N,K) probabilities
DEFAULT_BATCH_SIZE = 64  # the model batch of explanations (and shap's round size: it shapes the maps)


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


def forward_seconds_per_image(predict: Predict, images: np.ndarray, batch_size: int, repeats: int = 3,
                              best: bool = True) -> float:
    """Wall time of one full `batch_size` batch through `predict`, per image (compile excluded): the best of
    `repeats` calls, or (best=False) their mean, which is what `repeats` batches in a row cost."""
    images = np.asarray(images, np.float32)
    batch = np.resize(images, (batch_size, *images.shape[1:])).astype(np.float32)
    predict(batch)  # compile / warm caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.asarray(predict(batch))
        times.append(time.perf_counter() - t0)
    return (min(times) if best else sum(times) / len(times)) / batch_size
