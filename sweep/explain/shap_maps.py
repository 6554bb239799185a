"""SHAP maps of one model on raw greyscale images (Partition explainer), their scores, and SHAP's own cost."""
from __future__ import annotations

import dataclasses
import re
import time
from typing import Callable, Sequence

import numpy as np
import shap

from sweep import UsageError
from sweep.explain import scores
from sweep.explain.predict import (DEFAULT_BATCH_SIZE, BucketedPredict, CountingPredict, Predict,
                                   forward_seconds_per_image)

MASKER_FORMS = ("blur(k,k)", "inpaint_telea", "inpaint_ns")
CLASS_MODES = ("true", "pred")
_BLUR = re.compile(r"^blur\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def check_masker(masker):
    """Return the masker shap expects, or raise naming the allowed forms. (From Python, an array of the image's
    shape is also accepted: hidden pixels take its values, e.g. the mean image of healthy training cases.)"""
    if isinstance(masker, np.ndarray):
        return masker.astype(np.float32)
    text = str(masker).strip()
    match = _BLUR.match(text)
    if match and int(match.group(1)) > 0 and int(match.group(2)) > 0:
        return f"blur({int(match.group(1))},{int(match.group(2))})"
    if text in ("inpaint_telea", "inpaint_ns"):
        return text
    raise UsageError(f"unknown masker {masker!r}; allowed forms: {', '.join(MASKER_FORMS)} (k a positive int)")


def check_class_mode(class_mode: str) -> str:
    if class_mode not in CLASS_MODES:
        raise UsageError(f"unknown class mode {class_mode!r}; choose one of {', '.join(CLASS_MODES)}")
    return class_mode


@dataclasses.dataclass
class ImageExplanation:
    """One image's attribution (for the `target` class) in the raw image's (H,W) coordinates."""

    image_id: str
    label: int
    target: int
    pred: int
    prob: float  # predicted probability of `pred`
    values: np.ndarray  # (H,W) float32, signed
    evals: int
    seconds: float
    model_seconds: float = float("nan")  # of `seconds`, the time spent inside the model function


def as_float_images(images: np.ndarray) -> np.ndarray:
    """(N,H,W) or (N,H,W,1), uint8 or float in [0,1] -> (N,H,W,1) float32 in [0,1]."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    images = images.astype(np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] != 1:
        raise ValueError(f"images must be (N,H,W) or (N,H,W,1) greyscale, got shape {images.shape}")
    return images


def explain_images(predict: Predict, images: np.ndarray, *, labels: Sequence[int], classes: Sequence[str],
                   ids: Sequence[str] | None = None, max_evals: int = 300, masker: str = "blur(16,16)",
                   class_mode: str = "true", batch_size: int = DEFAULT_BATCH_SIZE) -> list[ImageExplanation]:
    """SHAP (Partition explainer) of one model on raw greyscale images; attributes the true or predicted class.

    `predict` maps (N,H,W,1) float32 in [0,1] to (N,K) probabilities and should already be compiled for the
    batch sizes it will see (see BucketedPredict.warm_up)."""
    masker = check_masker(masker)
    check_class_mode(class_mode)
    x = as_float_images(images)
    ids = [str(i) for i in (ids if ids is not None else range(len(x)))]
    # shap's inpaint maskers cast to uint8: hand them 0..255 images and scale back inside the model function
    scale = 255.0 if isinstance(masker, str) and masker.startswith("inpaint") else 1.0
    if isinstance(masker, np.ndarray):
        masker = masker.reshape(x.shape[1:])
    counter = CountingPredict(predict)
    model_fn = counter if scale == 1.0 else (lambda z: counter(np.asarray(z, np.float32) / scale))
    explainer = shap.Explainer(model_fn, shap.maskers.Image(masker, x.shape[1:]), output_names=list(classes))
    probs = np.asarray(predict(x))
    _warm_up_shap(explainer, x[0] * scale)
    out = []
    for i in range(len(x)):
        pred = int(np.argmax(probs[i]))
        target = int(labels[i]) if class_mode == "true" else pred
        before, model_before = counter.evals, counter.seconds
        t0 = time.perf_counter()
        explanation = explainer(x[i:i + 1] * scale, max_evals=max_evals, batch_size=batch_size,
                                outputs=[target], silent=True)
        seconds = time.perf_counter() - t0
        values = np.asarray(explanation.values)[0, ..., 0].sum(axis=-1).astype(np.float32)  # (H,W)
        out.append(ImageExplanation(ids[i], int(labels[i]), target, pred, float(probs[i, pred]), values,
                                    counter.evals - before, seconds, counter.seconds - model_before))
    return out


_SHAP_WARM = False


def _warm_up_shap(explainer, image: np.ndarray) -> None:
    """shap JIT-compiles its numba helpers on first use (seconds); do that once per process, untimed."""
    global _SHAP_WARM
    if not _SHAP_WARM:
        explainer(image[None], max_evals=8, batch_size=2, outputs=[0], silent=True)
        _SHAP_WARM = True


def shap_overhead(predict: Predict | None, images: np.ndarray, max_evals: int = 300,
                  batch_size: int = DEFAULT_BATCH_SIZE, masker: str = "blur(16,16)",
                  make_predict: Callable[[int], Predict] | None = None) -> dict[str, float]:
    """SHAP's own cost: explanation seconds / (evals x per-image forward time), over `images` (1 or more).

    Pass make_predict=loaded.predict_fn (batch size -> fixed-batch predict) to time exactly what explain_run
    does (bucketed batches, compiled before timing); or a ready `predict`. ratio <= 1.25 is the target."""
    x = as_float_images(images)
    if make_predict is not None:
        predict = BucketedPredict(make_predict, batch_size)
        predict.warm_up(x.shape[1:])
    per_image = forward_seconds_per_image(predict, x, batch_size)
    probs = np.asarray(predict(x))
    results = explain_images(predict, x, labels=np.argmax(probs, 1), classes=[str(k) for k in range(probs.shape[1])],
                             max_evals=max_evals, masker=masker, batch_size=batch_size)
    seconds = sum(r.seconds for r in results)
    evals = sum(r.evals for r in results)
    model_seconds = sum(r.model_seconds for r in results)
    return {"seconds": seconds, "evals": float(evals), "forward_seconds_per_image": per_image,
            "ratio": seconds / (evals * per_image) if evals and per_image > 0 else float("nan"),
            # where the excess goes: padding/small batches (model_seconds > evals x forward) or SHAP itself
            "model_seconds": model_seconds, "shap_own_seconds": seconds - model_seconds}


# ---------------------------------------------------------------------------------------------- scores
def score_map(values: np.ndarray, lesion_mask: np.ndarray | None = None, marker_box=None) -> dict[str, float]:
    """The four scores of one map; marker/lesion scores are NaN where the data has no ground truth."""
    return {
        "border_share": scores.border_share(values),
        "marker_share": scores.marker_share(values, marker_box),
        "lesion_share": scores.lesion_share(values, lesion_mask),
        "pointing_hit": scores.pointing_hit(values, lesion_mask),
    }
