"""SHAP overhead: what explaining a few images costs relative to predicting them (sweep.explain.shap_maps.shap_overhead)."""
from __future__ import annotations


def shap_cost(model_name: str, image_size: int, *, images: int = 2, max_evals: int = 64, batch_size: int = 32) -> dict:
    """Ratio reported by sweep.explain.shap_maps.shap_overhead for the given seed model, or {"skipped": why}."""
    try:
        from sweep.explain.shap_maps import shap_overhead
    except ImportError as err:
        return {"skipped": f"sweep.explain.shap_maps.shap_overhead not available: {err}"}
    import numpy as np

    from data.spec import PipelineSpec
    from sweep.bench.steps import build_bench_model
    from sweep.engine.steps import make_predict_fn

    model = build_bench_model(model_name, image_size)
    model.eval()
    predict = make_predict_fn(model, PipelineSpec(), batch_size)
    rng = np.random.default_rng(0)
    batch = rng.random((images, image_size, image_size, 1), dtype=np.float32)
    result = dict(shap_overhead(predict, batch, max_evals, batch_size))
    result.update(model=model_name, image_size=image_size, images=images, max_evals=max_evals)
    return result
