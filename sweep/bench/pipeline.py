"""Input-pipeline throughput (images/s) of the training pipeline over a prepared dataset."""
from __future__ import annotations

import time
import types


def _find_prepare():
    """data.prepare's prepare(DataSpec) -> PreparedDataset, or None while it does not exist."""
    try:
        from data.prepare import prepare
    except ImportError:
        try:
            from data import prepare  # type: ignore[no-redef]
        except ImportError:
            return None
    return prepare if callable(prepare) else None


def _train_split(image_size: int, num_images: int, allow_prepare: bool):
    """(train split, where it came from): a prepared synthetic dataset when possible, else in-memory arrays."""
    from data.spec import DataSpec

    spec = DataSpec(source="synthetic", image_size=image_size, num_images=num_images)
    prepare = _find_prepare() if allow_prepare else None  # not on the GPU path: it imports tensorflow_datasets
    if prepare is not None:
        return prepare(spec).split("train"), "prepared synthetic dataset (data.prepare)"
    from data.synthetic import generate

    arrays = generate(num_images, image_size=image_size, classes=spec.classes, seed=0)
    split = types.SimpleNamespace(images=arrays["images"], labels=arrays["labels"])
    return split, "in-memory synthetic arrays (no data.prepare)"


def pipeline_speed(image_size: int, batch_size: int, seconds: float, *, num_images: int = 512,
                   augment: str = "mild", allow_prepare: bool = True) -> dict:
    """images/s of data.pipeline's training batches (balanced, shuffled, augmented, batched, prefetched)."""
    from data.pipeline import pipeline_throughput
    from data.spec import PipelineSpec

    start = time.perf_counter()
    split, source = _train_split(image_size, num_images, allow_prepare)
    prepare_s = time.perf_counter() - start
    rate = pipeline_throughput(split, PipelineSpec(augment=augment), batch_size, seconds, num_classes=2)
    return {"images_per_s": rate, "image_size": image_size, "batch_size": batch_size, "augment": augment,
            "seconds": seconds, "source": source, "prepare_s": prepare_s}
