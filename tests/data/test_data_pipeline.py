"""Input pipeline: eval order and padding, training epochs (balance, shuffle, augmentation), to_model_input."""
from __future__ import annotations

import numpy as np
import pytest

from data import SplitArrays, PipelineSpec, class_weights, eval_batches, steps_per_epoch, to_model_input, train_batches
from data.pipeline import resize_image


def make_split(n=10, size=16, labels=None):
    labels = np.array(labels if labels is not None else [i % 2 for i in range(n)], np.int32)
    images = np.stack([np.full((size, size), 10 * i, np.uint8) for i in range(len(labels))])
    ids = np.array([f"img-{i}" for i in range(len(labels))])
    return SplitArrays(images=images, labels=labels, ids=ids, groups=ids)


def test_eval_batches_yield_each_example_once_in_order_with_padding():
    split = make_split(10)
    batches = list(eval_batches(split, PipelineSpec(), batch_size=4))
    assert len(batches) == 3
    index = np.concatenate([b["index"] for b in batches])
    valid = np.concatenate([b["valid"] for b in batches])
    np.testing.assert_array_equal(index[valid], np.arange(10))
    np.testing.assert_array_equal(index[~valid], [-1, -1])
    last = batches[-1]
    assert last["image"].shape == (4, 16, 16, 1) and last["image"].dtype == np.float32
    assert list(last["valid"]) == [True, True, False, False]
    np.testing.assert_allclose(last["image"][0, 0, 0, 0], 80 / 255)
    np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches])[valid], split.labels)


def test_train_epoch_is_a_deterministic_shuffle_covering_every_example():
    split = make_split(10)
    spec = PipelineSpec(augment="none")
    run = lambda epoch: np.concatenate([b["index"][b["valid"]] for b in train_batches(
        split, spec, batch_size=4, seed=1, epoch=epoch, num_classes=2)])
    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a, b)
    assert sorted(a) == list(range(10)) and not np.array_equal(a, c)
    assert steps_per_epoch(split, spec, 4) == 3


def test_oversample_repeats_the_minority_class():
    split = make_split(labels=[0] * 4 + [1] * 12)
    spec = PipelineSpec(augment="none", balance="oversample", oversample=(3.0, 1.0))
    batches = list(train_batches(split, spec, batch_size=8, seed=0, epoch=0, num_classes=2))
    labels = np.concatenate([b["label"][b["valid"]] for b in batches])
    assert (labels == 0).sum() == 12 and (labels == 1).sum() == 12
    np.testing.assert_allclose(class_weights(split, 2), [16 / 8, 16 / 24])


@pytest.mark.parametrize("kind", ["mild", "seed"])
def test_augmentation_changes_train_images_but_clean_image_stays(kind):
    rng = np.random.default_rng(0)
    split = make_split(8)
    split.images[:] = rng.integers(0, 255, split.images.shape, dtype=np.uint8)
    spec = PipelineSpec(augment=kind)
    batch = next(iter(train_batches(split, spec, batch_size=8, seed=0, epoch=0, num_classes=2, with_clean=True)))
    clean_expected = split.images[batch["index"]].astype(np.float32)[..., None] / 255
    np.testing.assert_allclose(batch["clean_image"], clean_expected)
    assert not np.allclose(batch["image"], batch["clean_image"])
    assert batch["image"].min() >= 0 and batch["image"].max() <= 1


def test_prefetch_reraises_producer_errors():
    split = make_split(8)
    split.images = None  # indexing fails inside the background thread
    with pytest.raises(TypeError):
        list(train_batches(split, PipelineSpec(), batch_size=4, seed=0, epoch=0, num_classes=2))


def test_to_model_input_shapes_ranges_and_crop():
    import jax

    x = np.zeros((2, 20, 20, 1), np.float32)
    x[:, 5:15, 5:15] = 1.0  # bright centre, dark border
    x[:, :2, :2] = 1.0  # a "marker" in the corner
    out = to_model_input(x, PipelineSpec(channels=3, normalization="unit"))
    assert out.shape == (2, 20, 20, 3) and float(out.min()) == 0.0 and float(out.max()) == 1.0
    sym = to_model_input(x, PipelineSpec(channels=1, normalization="symmetric"))
    assert sym.shape == (2, 20, 20, 1) and float(sym.min()) == -1.0 and float(sym.max()) == 1.0
    cropped = jax.jit(lambda im: to_model_input(im, PipelineSpec(channels=1, crop_border=0.1)))(x)
    assert cropped.shape == (2, 20, 20, 1)
    assert float(cropped[0, 0, 0, 0]) < 0.05  # the corner marker was cropped away
    assert float(cropped[0, 10, 10, 0]) > 0.95  # the centre is kept (and scaled up)


def test_resize_image_is_antialiased_area_average():
    stripes = np.tile(np.array([0, 255], np.uint8), (64, 32))  # 1-px stripes alias under nearest/bilinear
    small = resize_image(stripes, 16)
    assert small.shape == (16, 16) and small.dtype == np.uint8
    assert np.all(np.abs(small.astype(int) - 128) <= 1)
