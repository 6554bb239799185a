"""Input pipeline: eval order and padding, training epochs (balance, shuffle, augmentation), to_model_input."""
from __future__ import annotations

import numpy as np
import pytest

from data import (DataSpec, LoaderOptions, PipelineSpec, SplitArrays, class_weights, eval_batches, prepare,
                  seeds_train_batches, steps_per_epoch, to_model_input, train_batches)
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


def noisy_split(n=23, size=16):
    split = make_split(n, size)
    split.images[:] = np.random.default_rng(5).integers(0, 255, split.images.shape, dtype=np.uint8)
    return split


def valid_rows_and_images(batches):
    batches = list(batches)
    index = np.concatenate([b["index"][b["valid"]] for b in batches])
    return index, np.concatenate([b["image"][b["valid"]] for b in batches])


def test_each_image_is_a_function_of_seed_epoch_and_position_only():
    split, spec = noisy_split(), PipelineSpec(augment="seed")
    run = lambda batch_size, workers: valid_rows_and_images(train_batches(
        split, spec, batch_size=batch_size, seed=3, epoch=2, num_classes=2, loader=LoaderOptions(workers=workers)))
    rows, images = run(4, 1)
    for batch_size, workers in ((4, 3), (7, 2), (23, 1)):
        other_rows, other_images = run(batch_size, workers)
        np.testing.assert_array_equal(other_rows, rows)
        np.testing.assert_array_equal(other_images, images)
    assert not np.array_equal(valid_rows_and_images(train_batches(
        split, spec, batch_size=4, seed=3, epoch=3, num_classes=2))[0], rows)


def test_shards_split_the_epoch_into_equal_lengths_with_the_same_images():
    split, spec = noisy_split(), PipelineSpec(augment="mild")
    rows, images = valid_rows_and_images(train_batches(split, spec, batch_size=4, seed=1, epoch=1, num_classes=2))
    by_row = dict(zip(rows.tolist(), images))
    seen = []
    for shard in range(3):
        batches = list(train_batches(split, spec, batch_size=4, seed=1, epoch=1, num_classes=2, shard=(shard, 3)))
        assert len(batches) == steps_per_epoch(split, spec, 4, 2, shard_count=3) == 2  # ceil(ceil(23 / 3) / 4)
        shard_rows, shard_images = valid_rows_and_images(batches)
        for row, image in zip(shard_rows.tolist(), shard_images):
            np.testing.assert_array_equal(image, by_row[row])  # augmented exactly as without sharding
        seen += shard_rows.tolist()
    assert sorted(seen) == list(range(23))
    with pytest.raises(ValueError, match="shard must be"):
        train_batches(split, spec, batch_size=4, seed=1, epoch=1, num_classes=2, shard=(3, 3))


def test_several_seeds_at_once_give_each_seed_its_own_batches():
    split, spec = noisy_split(), PipelineSpec(augment="mild")
    together = list(seeds_train_batches(split, spec, seeds=(0, 7, 9), batch_size=8, epoch=4, num_classes=2,
                                        with_clean=True))
    assert together[0]["image"].shape == (3, 8, 16, 16, 1)
    for k, seed in enumerate((0, 7, 9)):
        alone = list(train_batches(split, spec, batch_size=8, seed=seed, epoch=4, num_classes=2, with_clean=True))
        assert len(alone) == len(together)
        for a, t in zip(alone, together):
            for key in a:
                np.testing.assert_array_equal(t[key][k], a[key])
    assert not np.array_equal(together[0]["index"][0], together[0]["index"][1])


def test_a_prepared_split_streams_the_same_batches_as_its_arrays_in_memory(tmp_path):
    ds = prepare(DataSpec(source="synthetic", num_images=50, image_size=16, cache_dir=str(tmp_path)))
    on_disk = ds.split("train")
    in_memory = SplitArrays(images=on_disk.images[:], labels=on_disk.labels, ids=on_disk.ids, groups=on_disk.groups)
    spec = PipelineSpec(augment="mild")
    for make in (lambda s: train_batches(s, spec, batch_size=8, seed=2, epoch=1, num_classes=2, with_clean=True),
                 lambda s: eval_batches(s, spec, batch_size=8)):
        for a, b in zip(make(on_disk), make(in_memory), strict=True):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.slow
def test_worker_processes_give_the_same_batches_as_threads():
    split, spec = noisy_split(), PipelineSpec(augment="mild")
    make = lambda loader: valid_rows_and_images(train_batches(split, spec, batch_size=4, seed=1, epoch=1,
                                                              num_classes=2, loader=loader))
    threads, processes = make(LoaderOptions(workers=2)), make(LoaderOptions(workers=2, processes=True))
    np.testing.assert_array_equal(threads[0], processes[0])
    np.testing.assert_array_equal(threads[1], processes[1])


def test_loader_reraises_errors_made_in_its_workers():
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
