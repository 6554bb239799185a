"""The bench's input-pipeline section: the real training pipeline (grain over a prepared array_record dataset, with
augmentation), streamed with no model at each image size, exactly as `fusion-sweep data stream` measures it."""
from __future__ import annotations

import time

PIPELINE_IMAGES = 2000  # synthetic images prepared per size (once; cached under FUSION_SWEEP_CACHE)


def pipeline_speed(image_size: int, batch_size: int, seconds: float, *, num_images: int = PIPELINE_IMAGES,
                   augment: str = "mild") -> dict:
    """images/s and peak RSS of data.pipeline's training batches, epochs repeated until `seconds` are up, over a
    prepared synthetic dataset of `num_images` at `image_size`."""
    from data import DataSpec, PipelineSpec, prepare
    from data.stream import stream

    start = time.perf_counter()
    dataset = prepare(DataSpec(source="synthetic", image_size=image_size, num_images=num_images))
    prepare_s = time.perf_counter() - start
    train = dataset.split("train")
    steps = -(-len(train) // batch_size)
    epochs = max(1, int(seconds * 20_000 / max(len(train), 1)) + 1)  # enough epochs to outlast `seconds`
    figures = stream(train, PipelineSpec(augment=augment), batch_size=batch_size, num_classes=len(dataset.classes),
                     epochs=epochs, max_seconds=seconds)
    return {"images_per_s": figures["images_per_second"], "peak_rss_mb": figures["peak_rss_mb"],
            "image_size": image_size, "batch_size": batch_size, "augment": augment, "seconds": figures["seconds"],
            "images": figures["images"], "steps_per_epoch": steps, "workers": figures["workers"],
            "worker_kind": figures["worker_kind"], "source": f"prepared synthetic dataset {dataset.path}",
            "prepare_s": round(prepare_s, 2)}


def pipeline_by_size(sizes, batch_size: int, seconds: float, num_images: int = PIPELINE_IMAGES) -> dict:
    """pipeline_speed at every size; the first size's figures stay at the top level (what the table prints)."""
    by_size = {str(size): pipeline_speed(size, batch_size, seconds, num_images=num_images) for size in sizes}
    first = by_size[str(sizes[0])]
    return {**first, "by_size": by_size}
