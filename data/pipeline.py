"""Input pipeline: the one resize, balancing, augmentation, batching with a validity mask, prefetch, model-input transform."""
from __future__ import annotations

import math
import queue
import threading
import time
from typing import Iterator

import cv2
import numpy as np

from data.spec import PipelineSpec

Batch = dict  # image float32 (B,H,W,1) in [0,1], [clean_image], label int32 (B,), valid bool (B,), index int32 (B,)

AUGMENTATIONS = ("none", "mild", "seed")
# "mild": small pose and exposure changes a radiograph plausibly has.
MILD = dict(rotation_deg=7.0, shift=0.05, zoom=0.0, shear_deg=0.0, hflip=False, brightness=0.08, contrast=0.1)
# "seed": ASSUMED Keras ImageDataGenerator settings of the seed notebook (the notebook is not available here):
# rotation_range=20, width/height_shift_range=0.2, shear_range=0.2 (degrees, as Keras reads it), zoom_range=0.2,
# horizontal_flip=True, fill_mode='nearest'; no brightness/contrast change.
SEED = dict(rotation_deg=20.0, shift=0.2, zoom=0.2, shear_deg=0.2 * 180 / math.pi, hflip=True, brightness=0.0, contrast=0.0)
PREFETCH_BATCHES = 4


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """THE resize used to prepare every source (train and eval alike): area-averaging (antialiased) to size x size.
    Aspect ratio is not kept, as in the seed (the Kaggle images are square already)."""
    if image.ndim != 2:
        raise ValueError(f"resize_image expects a 2-D grey image, got shape {image.shape}")
    if image.shape == (size, size):
        return np.ascontiguousarray(image, dtype=np.uint8)
    return cv2.resize(np.asarray(image, np.uint8), (size, size), interpolation=cv2.INTER_AREA)


def class_weights(split, num_classes: int) -> np.ndarray:
    """Keras-style 'balanced' weights n / (k * n_c) (0 for an absent class), for PipelineSpec.balance='class_weight'."""
    counts = np.bincount(np.asarray(split.labels), minlength=num_classes).astype(np.float64)
    weights = np.zeros(num_classes)
    present = counts > 0
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


def _oversample_factors(labels: np.ndarray, spec: PipelineSpec, num_classes: int) -> np.ndarray:
    if spec.balance != "oversample":
        return np.ones(num_classes)
    counts = np.bincount(labels, minlength=num_classes)
    if spec.oversample is None:  # repeat minority classes up to the majority's count
        return np.where(counts > 0, counts.max() / np.maximum(counts, 1), 1.0)
    factors = np.asarray(spec.oversample, np.float64)
    if factors.shape != (num_classes,) or np.any(factors < 1.0):
        raise ValueError(f"oversample needs {num_classes} factors >= 1 (one per class), got {spec.oversample}")
    return factors


def epoch_indices(labels: np.ndarray, spec: PipelineSpec, *, seed: int, epoch: int, num_classes: int) -> np.ndarray:
    """Rows of one training epoch: oversampled per class (whole repeats, then a random part-repeat so the length
    is fixed), shuffled deterministically by (seed, epoch)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng((seed, epoch, 0x5EED))
    factors = _oversample_factors(labels, spec, num_classes)
    parts = []
    for c in range(num_classes):
        rows = np.nonzero(labels == c)[0]
        if rows.size == 0:
            continue
        whole = int(factors[c])
        extra = int(round(factors[c] * rows.size)) - whole * rows.size
        parts.append(np.tile(rows, whole))
        if extra > 0:
            parts.append(rng.choice(rows, size=extra, replace=False))
    order = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return rng.permutation(order).astype(np.int32)


def steps_per_epoch(split, spec: PipelineSpec, batch_size: int, num_classes: int | None = None) -> int:
    """Batches per training epoch (the last one padded)."""
    labels = np.asarray(split.labels)
    k = num_classes if num_classes is not None else int(labels.max(initial=-1)) + 1
    n = len(epoch_indices(labels, spec, seed=0, epoch=0, num_classes=k))
    return math.ceil(n / batch_size)


def _affine(rng, size: int, p: dict) -> np.ndarray:
    """One random 2x3 affine matrix about the image centre."""
    angle = np.deg2rad(rng.uniform(-p["rotation_deg"], p["rotation_deg"]))
    shear = np.deg2rad(rng.uniform(-p["shear_deg"], p["shear_deg"]))
    zx, zy = rng.uniform(1 - p["zoom"], 1 + p["zoom"], size=2)
    tx, ty = rng.uniform(-p["shift"], p["shift"], size=2) * size
    flip = -1.0 if (p["hflip"] and rng.random() < 0.5) else 1.0
    c, s = np.cos(angle), np.sin(angle)
    m = np.array([[c, -s], [s, c]]) @ np.array([[1, -np.sin(shear)], [0, np.cos(shear)]]) @ np.diag([zx * flip, zy])
    centre = np.array([size / 2 - 0.5, size / 2 - 0.5])
    offset = centre - m @ centre + np.array([tx, ty])
    return np.concatenate([m, offset[:, None]], axis=1)


def augment(images: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """uint8 (B,H,W) -> float32 (B,H,W) in [0,1], randomly augmented per `kind`."""
    if kind not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {kind!r}")
    out = images.astype(np.float32) * (1.0 / 255.0)
    if kind == "none" or len(images) == 0:
        return out
    p = MILD if kind == "mild" else SEED
    size = images.shape[1]
    for i in range(len(out)):
        # BORDER_REPLICATE is Keras' fill_mode='nearest'
        out[i] = cv2.warpAffine(out[i], _affine(rng, size, p), (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
    if p["contrast"] or p["brightness"]:
        b = len(out)
        gain = rng.uniform(1 - p["contrast"], 1 + p["contrast"], size=(b, 1, 1)).astype(np.float32)
        bias = rng.uniform(-p["brightness"], p["brightness"], size=(b, 1, 1)).astype(np.float32)
        mean = out.mean(axis=(1, 2), keepdims=True)
        out = (out - mean) * gain + mean + bias
    return np.clip(out, 0.0, 1.0, out=out)


def _make_batch(split, rows: np.ndarray, batch_size: int, image: np.ndarray, clean: np.ndarray | None) -> Batch:
    n = len(rows)
    pad = batch_size - n
    index = np.concatenate([rows, np.full(pad, -1, np.int32)]).astype(np.int32)
    labels = np.asarray(split.labels)[rows].astype(np.int32)
    batch = {
        "image": _pad(image, pad)[..., None],
        "label": np.concatenate([labels, np.zeros(pad, np.int32)]),
        "valid": np.arange(batch_size) < n,
        "index": index,
    }
    if clean is not None:
        batch["clean_image"] = _pad(clean, pad)[..., None]
    return batch


def _pad(x: np.ndarray, pad: int) -> np.ndarray:
    if pad == 0:
        return x
    return np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])


def prefetch(iterator: Iterator, size: int = PREFETCH_BATCHES) -> Iterator:
    """Run `iterator` in a background thread, `size` items ahead (cv2 and numpy release the GIL). Exceptions are
    re-raised in the consumer; abandoning the consumer stops the thread."""
    q: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            q.put(err)

    thread = threading.Thread(target=produce, name="fusion-sweep-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def train_batches(split, spec: PipelineSpec, *, batch_size: int, seed: int, epoch: int, num_classes: int,
                  with_clean: bool = False, prefetch_batches: int = PREFETCH_BATCHES) -> Iterator[Batch]:
    """One training epoch: balanced, shuffled by (seed, epoch), augmented per spec.augment, padded final batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = epoch_indices(split.labels, spec, seed=seed, epoch=epoch, num_classes=num_classes)

    def generate():
        for step, start in enumerate(range(0, len(order), batch_size)):
            rows = order[start:start + batch_size]
            raw = split.images[rows]
            rng = np.random.default_rng((seed, epoch, step))
            image = augment(raw, spec.augment, rng)
            clean = raw.astype(np.float32) * (1.0 / 255.0) if with_clean else None
            yield _make_batch(split, rows, batch_size, image, clean)

    if prefetch_batches <= 0:
        return generate()
    return prefetch(generate(), prefetch_batches)


def eval_batches(split, spec: PipelineSpec, *, batch_size: int) -> Iterator[Batch]:
    """Each example exactly once, in row order, no augmentation; the final batch padded (valid=False, index=-1)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(split.labels)
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n), dtype=np.int32)
        image = split.images[rows].astype(np.float32) * (1.0 / 255.0)
        yield _make_batch(split, rows, batch_size, image, None)


def to_model_input(images, spec: PipelineSpec):
    """(B,H,W,1) float in [0,1] -> (B,H,W,spec.channels) model input. Pure jax.numpy (jit-able); the ONE definition
    used by training, evaluation and SHAP. Border crop (then resize back), normalisation, grey -> channels."""
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(images, jnp.float32)
    if x.ndim != 4 or x.shape[-1] != 1:
        raise ValueError(f"to_model_input expects (B,H,W,1) images, got shape {x.shape}")
    b, h, w, _ = x.shape
    if not 0.0 <= spec.crop_border < 0.5:
        raise ValueError(f"crop_border must be in [0, 0.5), got {spec.crop_border}")
    ch, cw = int(round(spec.crop_border * h)), int(round(spec.crop_border * w))
    if ch or cw:
        x = x[:, ch:h - ch, cw:w - cw, :]
        x = jax.image.resize(x, (b, h, w, 1), method="linear", antialias=True)
    if spec.normalization == "symmetric":
        x = x * 2.0 - 1.0
    elif spec.normalization != "unit":
        raise ValueError(f"normalization must be 'unit' or 'symmetric', got {spec.normalization!r}")
    if spec.channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {spec.channels}")
    if spec.channels != 1:
        x = jnp.broadcast_to(x, (b, h, w, spec.channels))
    return x


def pipeline_throughput(split, spec: PipelineSpec, batch_size: int, seconds: float, *, num_classes: int | None = None,
                        with_clean: bool = False) -> float:
    """Training-pipeline speed in images/s over about `seconds` (epochs repeat as needed)."""
    k = num_classes if num_classes is not None else int(np.max(split.labels)) + 1
    images, epoch = 0, 0
    start = time.perf_counter()
    while True:
        for batch in train_batches(split, spec, batch_size=batch_size, seed=0, epoch=epoch, num_classes=k,
                                   with_clean=with_clean):
            images += int(batch["valid"].sum())
            if time.perf_counter() - start >= seconds:
                return images / (time.perf_counter() - start)
        epoch += 1
