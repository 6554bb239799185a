"""The prepared-dataset cache on a shared folder: one builder at a time, stale builds cleaned, damaged or unwritable
caches named in one line, content fingerprints, and the TFDS files readable without this project."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import data.builder
from data import DataSpec, DatasetDamaged, prepare
from data.locking import exclusive, lock_path
from data.prepared import MANIFEST, PreparedDataset

REPO_ROOT = Path(__file__).resolve().parents[2]


def synthetic(cache: Path, n: int = 60, **kw) -> DataSpec:
    return DataSpec(source="synthetic", num_images=n, image_size=32, cache_dir=str(cache), **kw)


def test_two_processes_preparing_at_once_build_once_and_both_read_it(tmp_path):
    cache = tmp_path / "shared-cache"
    code = ("import sys; from data import DataSpec, prepare; "
            f"ds = prepare(DataSpec(source='synthetic', num_images=600, image_size=48, cache_dir={str(cache)!r}), "
            "progress=True, workers=1); print(ds.path); print(sum(len(ds.split(s)) for s in ('train', 'val', 'test')))")
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    paths = {out.split()[0] for out, _ in outs}
    assert len(paths) == 1 and all(out.split()[1] == "600" for out, _ in outs)
    assert sum("generating" in err for _, err in outs) == 1, "both processes built the dataset"
    assert sorted(p.name for p in cache.iterdir() if p.name != ".hashes") == [Path(paths.pop()).name]


def test_stale_build_folders_are_removed_unless_their_builder_is_alive(tmp_path):
    cache = tmp_path / "cache"
    spec = synthetic(cache)
    final_name = f"synthetic-{data.builder.cache_key(spec, 'synthetic-v2')}"
    mine = cache / f".building-{final_name}-k1ll3d"
    dead = cache / ".building-radiography-0123456789abcdef-d34d"
    alive = cache / ".building-radiography-fedcba9876543210-4l1v"
    for folder in (mine, dead, alive):
        (folder / "tfds").mkdir(parents=True)
    with exclusive(lock_path(cache, "radiography-fedcba9876543210")):  # a builder of that dataset is running
        ds = prepare(spec)
    assert ds.path.name == final_name
    assert not mine.exists() and not dead.exists() and alive.exists()


def test_unwritable_cache_is_one_line_naming_the_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match=r"cache folder .*a-file/cache.* is not writable .*--data-dir-cache"):
        prepare(synthetic(blocker / "cache"))
    from sweep.cli import main

    rc = main(["data", "prepare", "--num-images", "30", "--image-size", "32", "--data-dir-cache",
               str(blocker / "cache"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "a-file/cache" in err


def test_truncated_array_record_is_one_line_naming_the_file_and_what_to_do(tmp_path, capsys):
    spec = synthetic(tmp_path / "cache")
    ds = prepare(spec)
    shard = next(ds.tfds_dir.glob("*-train.array_record-*"))
    shard.write_bytes(shard.read_bytes()[:1000])  # an interrupted copy
    with pytest.raises(DatasetDamaged, match=r"damaged: .*-train\.array_record-00000-of-00001 has 1000 bytes.*delete"):
        prepare(spec)
    from sweep.cli import main

    rc = main(["data", "prepare", "--num-images", "60", "--image-size", "32", "--data-dir-cache",
               str(tmp_path / "cache"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and str(ds.path) in err


def test_corrupt_records_fail_when_read_with_the_same_message(tmp_path):
    ds = prepare(synthetic(tmp_path / "cache"))
    shard = next(ds.tfds_dir.glob("*-train.array_record-*"))
    content = bytearray(shard.read_bytes())
    content[1000:20000] = bytes(19000)  # same size, garbage inside
    shard.write_bytes(bytes(content))
    with pytest.raises(DatasetDamaged, match="reading train records failed"):
        PreparedDataset(ds.path).split("train").images[:]


@pytest.mark.parametrize("workers", [["--workers", "2"], ["--workers", "2", "--processes"]])
def test_corrupt_records_found_by_a_loader_worker_are_one_line_not_a_traceback(tmp_path, capsys, workers):
    from sweep.cli import main

    ds = prepare(synthetic(tmp_path / "cache"))
    shard = next(ds.tfds_dir.glob("*-train.array_record-*"))
    content = bytearray(shard.read_bytes())
    content[1000:20000] = bytes(19000)  # the size check at open passes: only reading finds it
    shard.write_bytes(bytes(content))
    rc = main(["data", "stream", "--num-images", "60", "--image-size", "32", "--data-dir-cache",
               str(tmp_path / "cache"), "--quiet", *workers])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("fusion-sweep data: error: prepared dataset") and str(ds.path) in err and "delete" in err


def test_half_built_dataset_is_never_read_and_prepare_replaces_it(tmp_path):
    spec = synthetic(tmp_path / "cache")
    ds = prepare(spec)
    (ds.path / MANIFEST).unlink()  # e.g. a copy that stopped before its last file
    with pytest.raises(DatasetDamaged, match="not a finished prepared dataset"):
        PreparedDataset(ds.path)
    again = prepare(spec)
    assert again.path == ds.path and (again.path / MANIFEST).is_file()
    assert len(again.split("test")) == len(ds.split("test"))


def write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 0])  # stored, not deflated: size = f(shape) only


def noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (24, 24), dtype=np.uint8)


def edit_one_pixel_keeping_size_and_mtime(victim: Path, seed: int) -> None:
    """Rewrite the PNG `victim` (written from noise(seed)) with one pixel changed: same file size, its old mtime
    restored; only its content (and its ctime) tells the edit."""
    stat = victim.stat()
    edited = noise(seed)
    edited[5, 5] ^= 0xFF
    write_png(victim, edited)
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert victim.stat().st_size == stat.st_size


def test_fingerprint_follows_content_not_mtimes(tmp_path, monkeypatch):
    root = tmp_path / "src"
    for c, cls in enumerate(("COVID", "Normal")):
        for i in range(6):
            write_png(root / cls / f"{i}.png", noise(100 * c + i))
    spec = DataSpec(source="radiography", data_dir=str(root), image_size=16, cache_dir=str(tmp_path / "cache"))
    first = prepare(spec)
    for path in root.rglob("*.png"):  # a re-export: same bytes, new times
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    monkeypatch.setattr(data.builder, "_write_records", lambda *a, **k: pytest.fail("rebuilt an unchanged source"))
    assert prepare(spec).path == first.path
    monkeypatch.undo()
    edit_one_pixel_keeping_size_and_mtime(root / "Normal" / "3.png", 103)
    assert prepare(spec).path != first.path


def test_prepared_files_open_with_tfds_alone_and_match_the_fast_reader(tmp_path):
    import tensorflow_datasets as tfds

    ds = prepare(synthetic(tmp_path / "cache", marker_rate=(1.0, 0.0)))
    test = ds.split("test")
    source = tfds.builder_from_directory(str(ds.tfds_dir)).as_data_source(split="test")
    rows = [3, 0, len(test) - 1]
    fast = test.read(rows, ("image", "lesion_mask", "label", "marker_box", "id", "group"))
    for k, row in enumerate(rows):
        record = source[row]
        np.testing.assert_array_equal(fast["image"][k], record["image"])
        np.testing.assert_array_equal(fast["lesion_mask"][k], record["lesion_mask"])
        np.testing.assert_array_equal(fast["marker_box"][k], record["marker_box"])
        assert fast["label"][k] == record["label"] == test.labels[row]
        assert fast["id"][k] == record["id"].decode() == test.ids[row] == test.groups[row]


def test_split_columns_index_like_arrays(tmp_path):
    test = prepare(synthetic(tmp_path / "cache")).split("test")
    whole = test.images[:]
    assert whole.shape == (len(test), 32, 32) and whole.dtype == np.uint8
    np.testing.assert_array_equal(test.images[2], whole[2])
    np.testing.assert_array_equal(test.images[[4, 1]], whole[[4, 1]])
    np.testing.assert_array_equal(test.images[test.labels == 1], whole[test.labels == 1])
    np.testing.assert_array_equal(np.asarray(test.lesion_masks)[-1], test.lesion_masks[-1])
    np.testing.assert_array_equal(test.images[:3, :, :, None], whole[:3, :, :, None])
    np.testing.assert_array_equal(test.images[..., None], whole[..., None])
    np.testing.assert_array_equal(test.images[1, 2:4], whole[1, 2:4])
    with pytest.raises(IndexError, match="out of range"):
        test.images[len(test)]


def test_data_stream_prints_and_writes_its_figures(tmp_path, capsys):
    import json

    from sweep.cli import main

    out = tmp_path / "stream.json"
    rc = main(["data", "stream", "--num-images", "60", "--image-size", "32", "--data-dir-cache", str(tmp_path / "c"),
               "--batch-size", "8", "--epochs", "2", "--workers", "2", "--json", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0 and "images/s" in printed and "per CPU-second" in printed and "peak RSS" in printed
    figures = json.loads(out.read_text())
    assert figures["images"] == 2 * 42 and figures["images_per_second"] > 0 and figures["peak_rss_mb"] > 50
    assert 0 < figures["cpu_seconds"] and figures["images_per_cpu_second"] > 0
    assert figures["worker_kind"] == "threads" and figures["workers"] == 2 and figures["open_seconds"] >= 0
    rc = main(["data", "stream", "--num-images", "60", "--image-size", "32", "--data-dir-cache", str(tmp_path / "c"),
               "--epochs", "0", "--quiet"])
    assert rc == 2 and "--epochs" in capsys.readouterr().err


def test_open_prepared_reads_a_finished_dataset_of_the_same_spec_only(tmp_path):
    from data.builder import open_prepared

    spec = synthetic(tmp_path / "cache")
    ds = prepare(spec)
    assert open_prepared(ds.path, spec.replace(cache_dir="/somewhere/else")).path == ds.path  # another node's view
    assert open_prepared(ds.path, spec.replace(image_size=48)) is None
    assert open_prepared(tmp_path / "not-there", spec) is None and open_prepared(None, spec) is None
