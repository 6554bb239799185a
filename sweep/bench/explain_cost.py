"""SHAP's cost: explaining images against predicting them, at the sweep's settings (sweep.explain.shap_maps)."""
from __future__ import annotations

import numpy as np

from data.spec import PipelineSpec
from sweep.bench.steps import build_bench_model
from sweep.configs.schema import TrainConfig
from sweep.engine.steps import make_predict_fn
from sweep.explain.shap_maps import shap_overhead


def shap_cost(model_name: str, image_size: int, *, images: int = 8, max_evals: int = 200, batch_size: int | None = None,
              windows: int = 3) -> dict:
    """explanation seconds / (evals x per-image forward seconds at the sweep's eval batch) for one seed model,
    median of `windows` interleaved windows with their spread. batch_size defaults to TrainConfig.eval_batch_size."""
    batch_size = batch_size or TrainConfig().eval_batch_size
    model = build_bench_model(model_name, image_size)
    model.eval()
    batch = np.random.default_rng(0).random((images, image_size, image_size, 1), dtype=np.float32)
    result = shap_overhead(None, batch, max_evals, batch_size,
                           make_predict=lambda size: make_predict_fn(model, PipelineSpec(), size), windows=windows)
    result.update(model=model_name, image_size=image_size)
    return result
