"""The grain input pipeline: index sampling (balance, per-epoch shuffle, shards) over a split's rows, then batches read
by random access from the array_record files, augmented, and padded to a fixed size with a `valid` mask.

    rows of the epoch --grain shuffle(seed, epoch)--> [shard i of n] --grain batch--> read + augment + pad --> Batch

Every random choice is a function of (seed, epoch, position in the epoch): the same batches come out whatever the
number of worker threads or processes, whether the epoch runs whole or resumes after a crash, and whichever other
seeds are trained beside it. Only a bounded window of batches is in memory (workers x prefetch).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterator, Sequence

import grain
import numpy as np

from data.augment import AUGMENTATIONS, augment, stream_key, uniforms
from data.images import resize_image  # noqa: F401 - re-exported: callers import the one resize from here too
from data.parallel import available_cores
from data.spec import PipelineSpec

Batch = dict  # image float32 (B,H,W,1) in [0,1], [clean_image], label int32 (B,), valid bool (B,), index int32 (B,)
PAD = -1  # the row index of padding (valid=False)


def __getattr__(name: str):
    """data.pipeline.to_model_input still works, without importing jax for every user of the pipeline."""
    if name == "to_model_input":
        from data.model_input import to_model_input

        return to_model_input
    raise AttributeError(f"module 'data.pipeline' has no attribute {name!r}")


@dataclasses.dataclass(frozen=True)
class LoaderOptions:
    """How batches are made in parallel. Threads are the default: measured on 2 cores they match processes in
    images/s, start at once (processes take seconds per epoch to spawn) and share one copy of the reader."""

    workers: int | None = None  # None: the cores this process may use
    processes: bool = False  # grain mp_prefetch worker processes instead of threads
    prefetch: int = 2  # batches buffered per worker

    def worker_count(self) -> int:
        return max(1, self.workers if self.workers is not None else available_cores())


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


def epoch_rows(labels: np.ndarray, spec: PipelineSpec, *, seed: int, epoch: int, num_classes: int) -> np.ndarray:
    """Rows of one training epoch before shuffling: each class repeated by its oversampling factor (whole repeats,
    then a part-repeat drawn by (seed, epoch), so the length is fixed)."""
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
            parts.append(np.sort(rng.choice(rows, size=extra, replace=False)))
    return (np.concatenate(parts) if parts else np.zeros(0, np.int64)).astype(np.int64)


def _check_shard(shard: tuple[int, int]) -> None:
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard}")


def _positions(n: int, shuffle_seed: int | None, shard: tuple[int, int]) -> grain.MapDataset:
    """Positions 0..n-1 of an epoch (grain-shuffled when a seed is given), this shard's share of them: every shard
    equally long, short ones padded with PAD."""
    positions = grain.MapDataset.range(n)
    if shuffle_seed is not None:
        positions = positions.shuffle(seed=shuffle_seed)
    index, count = shard
    if count == 1:
        return positions
    pad = -n % count
    if pad:
        positions = grain.MapDataset.concatenate([positions, grain.MapDataset.source(np.full(pad, PAD, np.int64))])
    return positions[index::count]


def steps_per_epoch(split, spec: PipelineSpec, batch_size: int, num_classes: int | None = None, *,
                    shard_count: int = 1) -> int:
    """Batches per training epoch (the last one padded); the same for every shard."""
    labels = np.asarray(split.labels)
    k = num_classes if num_classes is not None else int(labels.max(initial=-1)) + 1
    n = len(epoch_rows(labels, spec, seed=0, epoch=0, num_classes=k))
    return math.ceil(math.ceil(n / shard_count) / batch_size)


class _MakeBatch:
    """(batch index, positions) -> Batch: the rows at those epoch positions, read from the split, each augmented by
    its (key, position), padded to batch_size."""

    def __init__(self, split, rows: np.ndarray, batch_size: int, augment_kind: str, key: int, with_clean: bool,
                 shard: tuple[int, int]):
        self.split, self.rows, self.batch_size, self.augment_kind, self.key = split, rows, batch_size, augment_kind, key
        self.with_clean, self.shard = with_clean, shard

    def __call__(self, batch_index: int, positions: np.ndarray) -> Batch:
        positions = np.asarray(positions, np.int64).reshape(-1)
        real = positions >= 0
        rows = np.where(real, self.rows[np.maximum(positions, 0)], PAD)
        n, size, pad = len(rows), self.batch_size, self.batch_size - len(rows)
        raw = _read_images(self.split, rows[real])
        # the draws follow the slot in the epoch (before sharding), so they do not depend on the shard count
        slots = (batch_index * size + np.arange(n))[real] * self.shard[1] + self.shard[0]
        image = np.zeros((size,) + raw.shape[1:], np.float32)
        image[:n][real] = augment(raw, self.augment_kind, uniforms(self.key, slots))
        labels = np.zeros(size, np.int32)
        labels[:n][real] = np.asarray(self.split.labels)[rows[real]]
        batch = {"image": image[..., None], "label": labels,
                 "valid": np.concatenate([real, np.zeros(pad, bool)]),
                 "index": np.concatenate([np.where(real, rows, PAD), np.full(pad, PAD)]).astype(np.int32)}
        if self.with_clean:
            clean = np.zeros_like(image)
            clean[:n][real] = raw.astype(np.float32) * np.float32(1.0 / 255.0)
            batch["clean_image"] = clean[..., None]
        return batch


def _read_images(split, rows: np.ndarray) -> np.ndarray:
    """uint8 (n,H,W) for `rows` of a prepared split (one pass over the records) or an in-memory SplitArrays."""
    if len(rows) == 0:
        size = np.asarray(split.images[:1]).shape[1:]
        return np.zeros((0,) + size, np.uint8)
    return np.asarray(split.images[rows], np.uint8)


def train_dataset(split, spec: PipelineSpec, *, batch_size: int, seed: int, epoch: int, num_classes: int,
                  with_clean: bool = False, shard: tuple[int, int] = (0, 1)) -> grain.MapDataset:
    """One training epoch as a grain MapDataset of Batches (random access: dataset[k] is batch k)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if spec.augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {spec.augment!r}")
    _check_shard(shard)
    rows = epoch_rows(split.labels, spec, seed=seed, epoch=epoch, num_classes=num_classes)
    positions = _positions(len(rows), stream_key(seed, epoch, 0) % 2**32, shard)
    return positions.batch(batch_size).map_with_index(
        _MakeBatch(split, rows, batch_size, spec.augment, stream_key(seed, epoch, 1), with_clean, shard))


def eval_dataset(split, spec: PipelineSpec, *, batch_size: int, shard: tuple[int, int] = (0, 1)) -> grain.MapDataset:
    """Every row once, in row order, no augmentation, as a grain MapDataset of Batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_shard(shard)
    rows = np.arange(len(split.labels), dtype=np.int64)
    return _positions(len(rows), None, shard).batch(batch_size).map_with_index(
        _MakeBatch(split, rows, batch_size, "none", 0, False, shard))


def iterate(dataset: grain.MapDataset, loader: LoaderOptions | None = None) -> Iterator:
    """Yield the dataset's elements in order, made ahead by worker threads (or processes)."""
    loader = loader or LoaderOptions()
    workers = loader.worker_count()
    if loader.processes:
        _absl_flags_ready()
        iterable = dataset.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)).mp_prefetch(
            grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=loader.prefetch))
    else:
        iterable = dataset.to_iter_dataset(grain.ReadOptions(num_threads=workers,
                                                             prefetch_buffer_size=workers * loader.prefetch))
    iterator = iter(iterable)
    try:
        yield from iterator
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # stops worker processes and threads when the consumer stops early


def _absl_flags_ready() -> None:
    """grain's worker processes read absl flags, which raise unless parsed (google/grain#1355); we use no flags."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def train_batches(split, spec: PipelineSpec, *, batch_size: int, seed: int, epoch: int, num_classes: int,
                  with_clean: bool = False, shard: tuple[int, int] = (0, 1),
                  loader: LoaderOptions | None = None) -> Iterator[Batch]:
    """One training epoch: balanced, shuffled by (seed, epoch), augmented per spec.augment, padded final batch."""
    dataset = train_dataset(split, spec, batch_size=batch_size, seed=seed, epoch=epoch, num_classes=num_classes,
                            with_clean=with_clean, shard=shard)
    return iterate(dataset, loader)


def eval_batches(split, spec: PipelineSpec, *, batch_size: int, shard: tuple[int, int] = (0, 1),
                 loader: LoaderOptions | None = None) -> Iterator[Batch]:
    """Each example exactly once, in row order, no augmentation; the final batch padded (valid=False, index=-1)."""
    return iterate(eval_dataset(split, spec, batch_size=batch_size, shard=shard), loader)


class _StackSeeds:
    """Batch k of every seed's epoch, stacked on a new leading axis."""

    def __init__(self, datasets: Sequence[grain.MapDataset]):
        self.datasets = list(datasets)

    def __call__(self, k: int) -> Batch:
        batches = [d[k] for d in self.datasets]
        return {key: np.stack([b[key] for b in batches]) for key in batches[0]}


def seeds_train_batches(split, spec: PipelineSpec, *, seeds: Sequence[int], batch_size: int, epoch: int,
                        num_classes: int, with_clean: bool = False, shard: tuple[int, int] = (0, 1),
                        loader: LoaderOptions | None = None) -> Iterator[Batch]:
    """One epoch for several seeds trained together: every array has a leading seed axis (K, B, ...), and slice k
    is exactly train_batches(seed=seeds[k])'s batch (its own order and augmentation)."""
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    datasets = [train_dataset(split, spec, batch_size=batch_size, seed=s, epoch=epoch, num_classes=num_classes,
                              with_clean=with_clean, shard=shard) for s in seeds]
    return iterate(grain.MapDataset.range(len(datasets[0])).map(_StackSeeds(datasets)), loader)
