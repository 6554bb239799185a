"""prepare(): each supported folder layout, bad input, cache reuse, interrupted builds, synthetic annotations."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import data.builder
from data import DataSpec, prepare

SIZE = 16


def write_image(path: Path, value: int, shape=(40, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(value).integers(0, 255, shape, dtype=np.uint8)
    cv2.imwrite(str(path), img)


def kaggle_tree(root: Path, per_class=10) -> Path:
    for c, cls in enumerate(("COVID", "Normal", "Viral Pneumonia")):
        for i in range(per_class):
            write_image(root / cls / "images" / f"{cls}-{i}.png", 1000 * c + i)
            write_image(root / cls / "masks" / f"{cls}-{i}.png", 0)  # ignored
    (root / "COVID.metadata.xlsx").write_bytes(b"not really a spreadsheet")  # ignored
    return root


def spec(tmp_path, root, **kw) -> DataSpec:
    return DataSpec(source="radiography", data_dir=str(root), image_size=SIZE, cache_dir=str(tmp_path / "cache"), **kw)


def datasets_in(cache: Path) -> list[str]:
    """Prepared datasets and build folders in a cache (the content-hash cache and lock files are not datasets)."""
    if not cache.exists():
        return []
    return sorted(p.name for p in cache.iterdir() if p.is_dir() and p.name != ".hashes")


def test_kaggle_layout_three_classes_label_order_as_given(tmp_path):
    root = kaggle_tree(tmp_path / "kaggle")
    ds = prepare(spec(tmp_path, root, classes=("Normal", "viral_pneumonia", "COVID")))
    assert ds.classes == ("Normal", "viral_pneumonia", "COVID") and ds.manifest["layout"] == "kaggle"
    counts = ds.counts()
    assert sum(sum(c.values()) for c in counts.values()) == 30
    assert all(counts[s]["COVID"] > 0 for s in ("train", "val", "test"))
    train = ds.split("train")
    assert train.images[:].shape[1:] == (SIZE, SIZE) and train.images[:].dtype == np.uint8
    assert train.lesion_masks is None and train.marker_boxes is None
    for i in range(len(train)):
        expected = ("Normal/", "Viral Pneumonia/", "COVID/")[train.labels[i]]
        assert train.ids[i].startswith(expected)
    assert not any("masks" in i for s in ("train", "val", "test") for i in ds.split(s).ids)


def test_seed_layout_keeps_its_folder_splits(tmp_path):
    root = tmp_path / "seed"
    for split, n in (("Train", 6), ("Validation", 2), ("TEST", 3)):
        for cls in ("covid", "normal"):
            for i in range(n):
                write_image(root / split / cls / f"{cls}{i}.jpg", hash((split, cls, i)) % 10_000)
    ds = prepare(spec(tmp_path, root))
    assert ds.manifest["layout"] == "seed-splits"
    assert ds.counts() == {"train": {"COVID": 6, "Normal": 6}, "val": {"COVID": 2, "Normal": 2},
                           "test": {"COVID": 3, "Normal": 3}}


def test_folder_per_class_tree_with_nested_folders(tmp_path):
    root = tmp_path / "plain"
    for c, cls in enumerate(("COVID", "Normal")):
        for i in range(10):
            write_image(root / cls / f"batch{i % 2}" / f"{i}.jpeg", 100 * c + i)
    ds = prepare(spec(tmp_path, root))
    assert ds.manifest["layout"] == "folder-per-class"
    assert sum(len(ds.split(s)) for s in ("train", "val", "test")) == 20


def test_duplicates_and_patients_never_straddle_splits(tmp_path):
    root = tmp_path / "dups"
    for c, cls in enumerate(("COVID", "Normal")):
        for i in range(12):
            write_image(root / cls / "images" / f"{i}.png", 100 * c + i // 3)  # groups of 3 identical files
    ds = prepare(spec(tmp_path, root))
    groups = {s: set(ds.split(s).groups) for s in ("train", "val", "test")}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])
    assert len(set().union(*groups.values())) == 8


def test_metadata_patient_ids_group_the_split(tmp_path):
    root = kaggle_tree(tmp_path / "k", per_class=12)
    rows = ["file,label,patient_id"]
    for cls in ("COVID", "Normal", "Viral Pneumonia"):
        rows += [f"{cls}/images/{cls}-{i}.png,{cls},{cls}-p{i // 4}" for i in range(12)]
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    ds = prepare(spec(tmp_path, root, classes=("COVID", "Normal")))
    seen = {}
    for s in ("train", "val", "test"):
        for g in ds.split(s).groups:
            assert seen.setdefault(g, s) == s, f"patient {g} in two splits"
    assert len(seen) == 6


def test_second_prepare_reuses_the_cache(tmp_path, monkeypatch):
    root = kaggle_tree(tmp_path / "k")
    first = prepare(spec(tmp_path, root))
    monkeypatch.setattr(data.builder, "_write_records", lambda *a, **k: pytest.fail("prepared twice"))
    monkeypatch.setattr("data.radiography.decode_grey", lambda *a, **k: pytest.fail("decoded images twice"))
    second = prepare(spec(tmp_path, root))
    assert second.path == first.path
    np.testing.assert_array_equal(second.split("test").images[:], first.split("test").images[:])
    # a changed source is a different dataset
    monkeypatch.undo()
    write_image(root / "COVID" / "images" / "COVID-new.png", 777)
    assert prepare(spec(tmp_path, root)).path != first.path


def test_interrupted_preparation_leaves_nothing_and_next_run_rebuilds(tmp_path, monkeypatch):
    root = kaggle_tree(tmp_path / "k")
    real_write = data.builder._write_records

    def write_then_die(*args, **kwargs):
        real_write(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(data.builder, "_write_records", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        prepare(spec(tmp_path, root))
    cache = tmp_path / "cache"
    assert datasets_in(cache) == [] and not list(cache.glob(".lock-*"))
    monkeypatch.undo()
    ds = prepare(spec(tmp_path, root))
    assert sum(len(ds.split(s)) for s in ("train", "val", "test")) == 20


def test_corrupt_image_is_named_and_skip_bad_skips_it(tmp_path):
    root = kaggle_tree(tmp_path / "k")
    bad = root / "Normal" / "images" / "Normal-3.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated PNG
    with pytest.raises(ValueError, match="Normal/images/Normal-3.png"):
        prepare(spec(tmp_path, root))
    assert datasets_in(tmp_path / "cache") == []
    ds = prepare(spec(tmp_path, root, skip_bad=True))
    assert ds.manifest["bad_files"] == ["Normal/images/Normal-3.png"]
    assert sum(ds.counts()[s]["Normal"] for s in ("train", "val", "test")) == 9


@pytest.mark.parametrize("setup, kwargs, message", [
    ("missing", {}, "does not exist"),
    ("kaggle", {"classes": ("COVID", "Pneumonia")}, "folders found: 'COVID', 'Normal', 'Viral Pneumonia'"),
    ("empty-class", {}, "'Normal' have no images"),
    ("bad-metadata", {}, "name files that do not exist, e.g. 'COVID/images/gone.png'"),
    ("kaggle", {"split_fractions": (0.5, 0.2, 0.2)}, "sum to 0.9"),
    ("kaggle", {"split_fractions": (0.9, 0.1, 0.0)}, "leaves a split empty"),
    ("tiny", {"split_fractions": (0.8, 0.1, 0.1)}, "split empty"),
])
def test_bad_input_is_reported_and_nothing_is_written(tmp_path, setup, kwargs, message):
    root = tmp_path / "src"
    if setup != "missing":
        kaggle_tree(root, per_class=1 if setup == "tiny" else 4)
    if setup == "empty-class":
        for f in (root / "Normal" / "images").iterdir():
            f.unlink()
    if setup == "bad-metadata":
        (root / "metadata.csv").write_text("file,patient_id\nCOVID/images/gone.png,p1\n")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        prepare(spec(tmp_path, root, **kwargs))
    assert datasets_in(tmp_path / "cache") == []


def test_synthetic_prepared_with_annotations(tmp_path):
    s = DataSpec(source="synthetic", num_images=60, image_size=SIZE * 2, cache_dir=str(tmp_path / "cache"),
                 marker_rate=(1.0, 0.0))
    ds = prepare(s)
    test = ds.split("test")
    masks = test.lesion_masks[:]
    assert masks.shape == (len(test), SIZE * 2, SIZE * 2) and masks.dtype == bool
    covid = test.labels == 0
    assert np.all(test.marker_boxes[covid, 0] >= 0) and np.all(test.marker_boxes[~covid] == -1)
    assert np.all(masks[covid].any(axis=(1, 2))) and not masks[~covid].any()
    assert all(i.startswith("synthetic-") for i in test.ids)
    assert prepare(s).path == ds.path


def test_cli_prepare_prints_counts(tmp_path, capsys):
    from sweep.cli import main

    root = kaggle_tree(tmp_path / "k")
    rc = main(["data", "prepare", "--data", "radiography", "--data-dir", str(root), "--image-size", "16",
               "--data-dir-cache", str(tmp_path / "cache"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "COVID" in out and "train" in out and "test" in out
    rc = main(["data", "show", "--data", "synthetic", "--num-images", "30", "--image-size", "32",
               "--data-dir-cache", str(tmp_path / "cache"), "--out", str(tmp_path / "grid.png"), "--quiet"])
    assert rc == 0 and cv2.imread(str(tmp_path / "grid.png")) is not None
    rc = main(["data", "prepare", "--data", "radiography", "--data-dir", str(tmp_path / "nope"), "--quiet"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
