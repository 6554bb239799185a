"""Datasets (Kaggle COVID-19 Radiography Database, synthetic chest X-rays) and the grain input pipeline.

Names are imported on first use, so `import data.model_input` (the GPU path) never loads grain, cv2 or TFDS.
"""
from __future__ import annotations

import importlib

_HOMES = {
    "DataSpec": "data.spec", "PipelineSpec": "data.spec",
    "prepare": "data.builder", "user_cache_dir": "data.builder", "cache_root": "data.builder",
    "PreparedDataset": "data.prepared", "PreparedSplit": "data.prepared", "SplitArrays": "data.prepared",
    "DatasetDamaged": "data.records",
    "Batch": "data.pipeline", "LoaderOptions": "data.pipeline", "class_weights": "data.pipeline",
    "eval_batches": "data.pipeline", "seeds_train_batches": "data.pipeline", "steps_per_epoch": "data.pipeline",
    "train_batches": "data.pipeline",
    "resize_image": "data.images", "to_model_input": "data.model_input",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
