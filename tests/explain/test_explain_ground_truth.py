"""SHAP scores against ground truth on synthetic data: a planted text marker is found and flagged, border
cropping clears the flag, and a model trained on marker-free data looks at the lesions."""
from __future__ import annotations

import flax.nnx as nnx
import jax
import numpy as np
import optax
import pytest

from data.model_input import to_model_input
from data.spec import PipelineSpec
from data.synthetic import generate
from sweep.explain import models_table, runner, shap_maps
from sweep.engine.steps import make_predict_fn

SIZE = 48
CLASSES = ("COVID", "Normal")
MARKER_RATE = (0.9, 0.1)  # the shortcut: a burnt-in marker on 90% of COVID and 10% of Normal images
HARD, EASY = 0.8, 0.3  # lesion difficulty: hard makes the marker the easy cue; easy lets a clean model learn lesions
MAX_EVALS = 500
pytestmark = pytest.mark.slow  # trains three small models (about a minute on two busy cores)


class TinyCNN(nnx.Module):
    """Three 3x3 convs, two max-pools, a flatten head: small, but location-aware like the seed's CNN."""

    def __init__(self, rngs: nnx.Rngs):
        self.c1 = nnx.Conv(1, 16, (3, 3), rngs=rngs)
        self.c2 = nnx.Conv(16, 32, (3, 3), rngs=rngs)
        self.c3 = nnx.Conv(32, 32, (3, 3), rngs=rngs)
        self.out = nnx.Linear((SIZE // 4) ** 2 * 32, len(CLASSES), rngs=rngs)

    def __call__(self, x):
        x = nnx.max_pool(jax.nn.relu(self.c1(x)), (2, 2), (2, 2))
        x = nnx.max_pool(jax.nn.relu(self.c2(x)), (2, 2), (2, 2))
        return self.out(jax.nn.relu(self.c3(x)).reshape(x.shape[0], -1))


def _train(data: dict, pipeline: PipelineSpec, epochs: int = 20, seed: int = 0) -> TinyCNN:
    graphdef, params = nnx.split(TinyCNN(nnx.Rngs(seed)), nnx.Param)
    tx = optax.adam(1e-3)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss(p):
            logits = nnx.merge(graphdef, p)(to_model_input(x, pipeline))
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        grads = jax.grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    x = data["images"].astype(np.float32)[..., None] / 255.0
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x) - 31, 32):
            rows = order[i:i + 32]
            params, opt_state = step(params, opt_state, x[rows], data["labels"][rows])
    return nnx.merge(graphdef, params)


def _predict(model, pipeline):
    return make_predict_fn(model, pipeline, 64)


@pytest.fixture(scope="module")
def trained():
    """Three models: marker data, marker data with crop_border training, marker-free easier data."""
    marked = generate(600, image_size=SIZE, classes=CLASSES, seed=1, difficulty=HARD, marker_rate=MARKER_RATE)
    clean = generate(600, image_size=SIZE, classes=CLASSES, seed=1, difficulty=EASY)
    plain, crop = PipelineSpec(channels=1), PipelineSpec(channels=1, crop_border=0.15)
    return {
        "marker": _predict(_train(marked, plain), plain),
        "crop": _predict(_train(marked, crop), crop),
        "clean": _predict(_train(clean, plain), plain),
        "healthy_mean": clean["images"][clean["labels"] == 1].mean(0)[..., None] / 255.0,
    }


@pytest.fixture(scope="module")
def marker_rows(trained):
    """Each model's summary rows on the same eight marked test images (four per class)."""
    test = generate(200, image_size=SIZE, classes=CLASSES, seed=2, difficulty=HARD, marker_rate=MARKER_RATE,
                    start=10_000)
    has = test["marker_boxes"][:, 0] >= 0
    idx = np.concatenate([np.flatnonzero(has & (test["labels"] == c))[:4] for c in range(len(CLASSES))])
    out = {}
    for name in ("marker", "crop", "clean"):
        results = shap_maps.explain_images(trained[name], test["images"][idx], labels=test["labels"][idx],
                                           classes=CLASSES, max_evals=MAX_EVALS, masker="blur(9,9)")
        out[name] = runner.summary_rows(name, results, test["lesion_masks"][idx], test["marker_boxes"][idx])
        assert all(r["evals"] <= MAX_EVALS for r in out[name])
    print("marker_share per model:", {k: round(float(np.mean([r["marker_share"] for r in v])), 3)
                                      for k, v in out.items()})
    return out


def test_planted_marker_is_found_and_flagged(marker_rows):
    marker, clean = (models_table.model_row(k, marker_rows[k]) for k in ("marker", "clean"))
    assert marker["marker_share"] > 4 * clean["marker_share"]
    assert marker["marker_share_lo"] > marker["marker_share_reference"]  # boxes cover ~1.3% of the image
    assert "marker_share" in marker["flag"] and "marker_share" not in clean["flag"]  # (its corner is border too)


def test_crop_border_training_clears_the_flag(marker_rows):
    crop, marker = (models_table.model_row(k, marker_rows[k]) for k in ("crop", "marker"))
    assert crop["marker_share"] < marker["marker_share"] / 4
    assert "marker_share" not in crop["flag"]


def test_clean_model_looks_at_the_lesions(trained):
    test = generate(40, image_size=SIZE, classes=CLASSES, seed=2, difficulty=EASY, start=10_000)
    idx = np.flatnonzero(test["labels"] == 0)[:4]  # COVID images: they have lesion masks
    # Blur cannot hide a smooth blob (it leaves its brightness in place), so hidden pixels take the mean
    # healthy image: SHAP then asks "what here differs from healthy lungs?"
    results = shap_maps.explain_images(trained["clean"], test["images"][idx], labels=test["labels"][idx],
                                     classes=CLASSES, max_evals=MAX_EVALS, masker=trained["healthy_mean"])
    masks = test["lesion_masks"][idx]
    rows = runner.summary_rows("clean", results, masks)
    share = float(np.mean([r["lesion_share"] for r in rows]))
    area = float(masks.mean())
    print(f"lesion_share {share:.3f} vs lesion area {area:.3f}; pointing {np.mean([r['pointing_hit'] for r in rows])}")
    assert share > 2 * area
