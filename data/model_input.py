"""to_model_input: prepared grey images -> what a model sees. jax only (the GPU path imports this, never grain/cv2)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from data.spec import PipelineSpec


def to_model_input(images, spec: PipelineSpec):
    """(B,H,W,1) float in [0,1] -> (B,H,W,spec.channels) model input. Pure jax.numpy (jit-able); the ONE definition
    used by training, evaluation and SHAP. Border crop (then resize back), normalisation, grey -> channels."""
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
    elif spec.normalization not in ("unit", "auto"):  # auto: the model scales each branch's [0,1] input itself
        raise ValueError(f"normalization must be 'auto', 'unit' or 'symmetric', got {spec.normalization!r}")
    if spec.channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {spec.channels}")
    if spec.channels != 1:
        x = jnp.broadcast_to(x, (b, h, w, spec.channels))
    return x
