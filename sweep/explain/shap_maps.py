"""SHAP maps of one model on raw greyscale images (shap's Partition explainer, images batched together), scores, cost."""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, Sequence

import numpy as np
import shap

from sweep.explain import scores
from sweep.explain.options import CLASS_MODES, MASKER_FORMS, check_class_mode, check_masker  # noqa: F401
from sweep.explain.predict import DEFAULT_BATCH_SIZE, CountingPredict, Predict, forward_seconds_per_image


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
    """SHAP (shap's Partition explainer) of one model on raw greyscale images; attributes the true or predicted class.

    All images are explained together (sweep.explain.owen): the model sees batches of exactly `batch_size` rows
    whenever the images' pending evaluations fill one, so `predict` needs one compilation, for `batch_size`.
    The maps equal shap.PartitionExplainer's with the same masker, max_evals and batch_size. `predict` maps
    (N,H,W,1) float32 in [0,1] to (N,K) probabilities. An image's `seconds` and `model_seconds` are its share
    (by evaluations) of the whole explanation's time."""
    from sweep.explain.owen import ImageGame, play

    masker = check_masker(masker)
    check_class_mode(class_mode)
    x = as_float_images(images)
    if max_evals < 3:
        raise ValueError(f"max_evals must be >= 3, got {max_evals}")
    ids = [str(i) for i in (ids if ids is not None else range(len(x)))]
    # shap's inpaint maskers cast to uint8: hand them 0..255 images and scale back before the model
    scale = 255.0 if isinstance(masker, str) and masker.startswith("inpaint") else 1.0
    image_masker = shap.maskers.Image(masker.reshape(x.shape[1:]) if isinstance(masker, np.ndarray) else masker,
                                      x.shape[1:])
    counter = CountingPredict(predict)
    probs = np.asarray(predict(x))
    preds = np.argmax(probs, axis=1)
    targets = [int(labels[i]) if class_mode == "true" else int(preds[i]) for i in range(len(x))]
    tree = _partition_tree(x.shape[1:])
    games = [ImageGame(tree, target, max_evals, batch_size) for target in targets]
    t0 = time.perf_counter()
    play(games, [_masked_rows(image_masker, image, scale) for image in x], counter, batch_size)
    values = [game.values().reshape(x.shape[1:]).sum(axis=-1).astype(np.float32) for game in games]
    seconds, total = time.perf_counter() - t0, sum(game.total_evals for game in games)
    return [ImageExplanation(ids[i], int(labels[i]), targets[i], int(preds[i]), float(probs[i, preds[i]]), values[i],
                             game.total_evals, seconds * game.total_evals / total,
                             counter.seconds * game.total_evals / total) for i, game in enumerate(games)]


def warm_up(image_size: int, masker: str = "blur(16,16)", batch_size: int = DEFAULT_BATCH_SIZE) -> None:
    """Compile shap's numba functions (and build the partition tree) for images of this size, on a stand-in model in
    numpy (no JAX): ~15 s of one core on this 2-core machine that a sweep spends while Ray starts, not after the
    trials, when the explanations would wait for it."""
    x = np.zeros((1, int(image_size), int(image_size), 1), np.float32)
    explain_images(lambda rows: np.full((len(rows), 2), 0.5, np.float32), x, labels=[0], classes=["0", "1"],
                   max_evals=8, masker=masker, batch_size=batch_size)


@functools.lru_cache(maxsize=4)
def _partition_tree(shape: tuple[int, ...]):
    """shap's image partition for `shape` (built by numba; the same for every image of that shape)."""
    from sweep.explain.owen import PartitionTree

    return PartitionTree.of(shap.maskers.Image(0.0, shape))


def _masked_rows(image_masker, image: np.ndarray, scale: float) -> Callable[[np.ndarray], np.ndarray]:
    """masks (n,M) -> the model's input rows (n,H,W,C): shap's masker output for each mask, divided by `scale`."""
    flat = image.ravel() * scale
    if isinstance(image_masker.mask_value, str) and image_masker.blur_kernel is None:  # inpainting: per mask
        def rows(masks: np.ndarray) -> np.ndarray:
            out = np.stack([image_masker(mask, flat)[0].ravel() for mask in masks])
            return (out.astype(np.float32) / scale).reshape(len(masks), *image.shape)
        return rows
    image_masker.last_xid = None  # shap caches the blur by id(image), and ids of freed arrays are reused
    hidden = image_masker(np.zeros(flat.size, dtype=bool), flat)[0].ravel()  # blur or fixed values: one image
    return lambda masks: (np.where(masks, flat, hidden).astype(np.float32) / scale).reshape(len(masks), *image.shape)


def shap_overhead(predict: Predict | None, images: np.ndarray, max_evals: int = 300,
                  batch_size: int = DEFAULT_BATCH_SIZE, masker: str = "blur(16,16)",
                  make_predict: Callable[[int], Predict] | None = None, windows: int = 1) -> dict:
    """SHAP's cost: explanation seconds / (evals x per-image forward seconds at `batch_size`), over all `images`.

    Each of `windows` windows explains every image once, then times the same number of full `batch_size` batches
    through the same `predict` (interleaved, so load drifts hit both); the figures are the window with the median
    ratio, with every window's ratio beside it. Pass make_predict=loaded.predict_fn (batch size -> fixed-batch
    predict) to time exactly what explain_run does, or a ready `predict`. ratio <= 1.25 is the target."""
    x = as_float_images(images)
    if make_predict is not None:
        predict = make_predict(batch_size)
    probs = np.asarray(predict(x))
    labels, classes = np.argmax(probs, 1), [str(k) for k in range(probs.shape[1])]
    explain_images(predict, x[:1], labels=labels[:1], classes=classes, max_evals=8, masker=masker,
                   batch_size=batch_size)  # numba's first compilations, untimed
    rows = []
    for _ in range(max(1, int(windows))):
        cpu = time.process_time()
        results = explain_images(predict, x, labels=labels, classes=classes, max_evals=max_evals, masker=masker,
                                 batch_size=batch_size)
        cpu = time.process_time() - cpu
        evals = sum(r.evals for r in results)
        batches = -(-evals // batch_size)
        forward_cpu = time.process_time()
        per_image = forward_seconds_per_image(predict, x, batch_size, repeats=batches, best=False)
        forward_cpu = (time.process_time() - forward_cpu) / (batches * batch_size)
        seconds, model_seconds = sum(r.seconds for r in results), sum(r.model_seconds for r in results)
        rows.append({"seconds": seconds, "evals": float(evals), "forward_seconds_per_image": per_image,
                     "ratio": seconds / (evals * per_image), "ratio_cpu": cpu / (evals * forward_cpu),
                     # where any excess goes: short batches (model_seconds > evals x forward) or SHAP's own work
                     "model_seconds": model_seconds, "shap_own_seconds": seconds - model_seconds})
    ratios = [r["ratio"] for r in rows]
    out = dict(sorted(rows, key=lambda r: r["ratio"])[len(rows) // 2])
    out.update(ratio_windows=[round(r, 4) for r in ratios], ratio_min=min(ratios), ratio_max=max(ratios),
               ratio_cpu_windows=[round(r["ratio_cpu"], 4) for r in rows], windows=len(rows),
               batch_size=batch_size, images=len(x), max_evals=max_evals)
    return out


# ---------------------------------------------------------------------------------------------- scores
def score_map(values: np.ndarray, lesion_mask: np.ndarray | None = None, marker_box=None) -> dict[str, float]:
    """The four scores of one map; marker/lesion scores are NaN where the data has no ground truth."""
    return {
        "border_share": scores.border_share(values),
        "marker_share": scores.marker_share(values, marker_box),
        "lesion_share": scores.lesion_share(values, lesion_mask),
        "pointing_hit": scores.pointing_hit(values, lesion_mask),
    }
