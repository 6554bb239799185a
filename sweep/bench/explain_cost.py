"""SHAP overhead: what explaining a few images costs relative to predicting them (sweep.explain.shap_maps)."""
from __future__ import annotations

import numpy as np

from data.spec import PipelineSpec
from sweep.bench.steps import build_bench_model
from sweep.engine.steps import make_predict_fn
from sweep.explain.shap_maps import shap_overhead


def shap_cost(model_name: str, image_size: int, *, images: int = 2, max_evals: int = 64, batch_size: int = 32) -> dict:
    """shap_overhead's ratio (explanation seconds / evaluations x forward seconds) for one of the seed's models."""
    model = build_bench_model(model_name, image_size)
    model.eval()
    predict = make_predict_fn(model, PipelineSpec(), batch_size)
    batch = np.random.default_rng(0).random((images, image_size, image_size, 1), dtype=np.float32)
    result = dict(shap_overhead(predict, batch, max_evals, batch_size))
    result.update(model=model_name, image_size=image_size, images=images, max_evals=max_evals)
    return result
