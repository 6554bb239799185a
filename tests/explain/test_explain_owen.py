"""Images explained together equal shap.PartitionExplainer explaining them one by one, and the model sees full
fixed-size batches."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import shap

from sweep.explain import shap_maps
from sweep.explain.owen import ImageGame, PartitionTree, play

SIDE = 16
rng = np.random.default_rng(3)
WEIGHTS = rng.normal(size=(SIDE * SIDE, 3))
IMAGES = rng.random((5, SIDE, SIDE, 1)).astype(np.float32)
IMAGES[:, :6, :6] = 0.5  # a flat patch: blurring it changes nothing, so some priorities tie exactly


def row_model(x):
    """A nonlinear 3-class model whose every row is computed on its own (so batch composition cannot matter)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    z = np.tanh(np.stack([(x * WEIGHTS[:, k]).sum(1) for k in range(3)], 1)) ** 3
    e = np.exp(z - z.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def shap_reference(masker, images, targets, max_evals, batch_size, scale=1.0):
    """shap itself, one image at a time, its tie-breaking random state seeded as ImageGame seeds it (0)."""
    explainer = shap.Explainer(lambda z: row_model(np.asarray(z, np.float32) / scale),
                               shap.maskers.Image(masker, images.shape[1:]))
    maps = []
    for image, target in zip(images, targets):
        np.random.seed(0)
        out = explainer(image[None] * scale, max_evals=max_evals, batch_size=batch_size, outputs=[target],
                        silent=True)
        maps.append(np.asarray(out.values)[0, ..., 0].sum(-1))
    return np.stack(maps)


@pytest.mark.parametrize("max_evals,batch_size", [(57, 16), (200, 64), (700, 32)])
@pytest.mark.parametrize("masker", ["blur(4,4)", "fixed"])
def test_maps_equal_shap_bit_for_bit(masker, max_evals, batch_size):
    masker = np.full((SIDE, SIDE, 1), 0.3, np.float32) if masker == "fixed" else masker
    targets = [0, 1, 2, 1, 0]
    ours = shap_maps.explain_images(row_model, IMAGES, labels=targets, classes=["a", "b", "c"],
                                    max_evals=max_evals, masker=masker, batch_size=batch_size)
    expected = shap_reference(masker, IMAGES, targets, max_evals, batch_size)
    np.testing.assert_array_equal(np.stack([r.values for r in ours]), expected.astype(np.float32))


def test_inpainting_maps_equal_shap():
    targets = [1, 2]
    ours = shap_maps.explain_images(row_model, IMAGES[:2], labels=targets, classes=["a", "b", "c"],
                                    max_evals=60, masker="inpaint_telea", batch_size=16)
    expected = shap_reference("inpaint_telea", IMAGES[:2], targets, 60, 16, scale=255.0)
    np.testing.assert_array_equal(np.stack([r.values for r in ours]), expected.astype(np.float32))


def test_games_in_any_interleaving_give_the_same_maps():
    tree = PartitionTree.of(shap.maskers.Image("blur(3,3)", IMAGES.shape[1:]))
    hidden = [cv2.blur(x, (3, 3)).ravel() for x in IMAGES]

    def run(in_flight, batch):
        games = [ImageGame(tree, 1, 150, 32) for _ in IMAGES]
        rows = [lambda m, i=i: np.where(m, IMAGES[i].ravel(), hidden[i]).reshape(len(m), SIDE, SIDE, 1)
                for i in range(len(IMAGES))]
        play(games, rows, row_model, batch, in_flight=in_flight)
        return np.stack([g.values() for g in games])

    reference = run(5, 64)
    for in_flight, batch in ((1, 32), (2, 7), (5, 63), (3, 200)):
        np.testing.assert_array_equal(run(in_flight, batch), reference)


def test_the_model_sees_full_batches_of_the_given_size():
    sizes = []

    def model(x):
        sizes.append(len(x))
        return row_model(x)

    images = np.resize(IMAGES, (8, SIDE, SIDE, 1))
    results = shap_maps.explain_images(model, images, labels=[0] * 8, classes=["a", "b", "c"], max_evals=200,
                                       masker="blur(4,4)", batch_size=64)
    sizes = sizes[1:]  # the first call predicts the images themselves
    evals = sum(r.evals for r in results)
    assert evals == 8 * 200 and sum(sizes) == evals
    assert sizes.count(64) == len(sizes) - sum(s < 64 for s in sizes) and sum(s < 64 for s in sizes) <= 2
    assert evals / (64 * len(sizes)) > 0.95  # padding the short batches to 64 would waste under 5%



def test_warm_up_builds_the_partition_tree_without_a_model():
    """The sweep's background warm-up (no JAX, a stand-in model) leaves shap's partition of that image size built."""
    from sweep.explain import shap_maps

    shap_maps.warm_up(12)
    hits = shap_maps._partition_tree.cache_info().hits
    shap_maps._partition_tree((12, 12, 1))
    assert shap_maps._partition_tree.cache_info().hits == hits + 1
