"""External evaluation sets from folders: classes matched by name, prepared once into the cache, and every kind of
bad input named in one line before any work (empty folder, unknown class, undecodable image, bad NAME)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from data import external
from data.spec import DataSpec, ExternalSpec
from data.synthetic import generate

DATA = DataSpec(source="synthetic", classes=("COVID", "Normal"), image_size=32)


def write_kaggle_folder(root: Path, n: int = 12, classes=("COVID", "Normal"), seed: int = 7, size: int = 48) -> Path:
    """Synthetic films written as PNGs in the Kaggle layout (<class>/images/<class>-<i>.png): a folder of our own
    making standing in for another hospital's."""
    drawn = generate(n, image_size=size, classes=classes, seed=seed)
    for i in range(n):
        name = classes[drawn["labels"][i]]
        folder = root / name / "images"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{name}-{i}.png"), drawn["images"][i])
    return root


def test_folder_is_prepared_at_the_sweeps_size_with_ids_relative_to_it(tmp_path):
    folder = write_kaggle_folder(tmp_path / "other", classes=("normal", "covid"))  # matched by name, not order
    paths = external.prepare_sets({"other": ExternalSpec(data_dir=str(folder))}, DATA, tmp_path / "cache")
    stored = external.load(paths["other"])
    assert stored.images.shape == (12, 32, 32) and stored.images.dtype == np.uint8
    assert set(stored.ids) == {str(p.relative_to(folder).as_posix()) for p in folder.rglob("*.png")}
    for image_id, label in zip(stored.ids, stored.labels):
        assert image_id.split("/")[0].upper() == DATA.classes[label].upper()
    assert external.class_counts(paths["other"], DATA.classes) == {"COVID": 6, "Normal": 6}
    mtime = paths["other"].stat().st_mtime_ns
    again = external.prepare_sets({"other": ExternalSpec(data_dir=str(folder))}, DATA, tmp_path / "cache")
    assert again["other"] == paths["other"] and again["other"].stat().st_mtime_ns == mtime  # prepared once


def test_a_re_exported_folder_is_not_prepared_again_and_a_changed_image_always_is(tmp_path):
    import os

    from tests.data.test_data_cache import edit_one_pixel_keeping_size_and_mtime, noise, write_png

    folder = tmp_path / "other"
    for c, cls in enumerate(("COVID", "Normal")):
        for i in range(3):
            write_png(folder / cls / "images" / f"{i}.png", noise(10 * c + i))  # stored PNGs: size = f(shape)
    sets = {"other": ExternalSpec(data_dir=str(folder))}
    first = external.prepare_sets(sets, DATA, tmp_path / "cache")["other"]
    for path in folder.rglob("*.png"):  # a re-export: same bytes, new times
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert external.prepare_sets(sets, DATA, tmp_path / "cache")["other"] == first
    edit_one_pixel_keeping_size_and_mtime(folder / "Normal" / "images" / "1.png", 11)
    changed = external.prepare_sets(sets, DATA, tmp_path / "cache")["other"]
    assert changed != first and not np.array_equal(external.load(changed).images, external.load(first).images)

def test_a_folder_may_hold_only_some_classes(tmp_path):
    folder = write_kaggle_folder(tmp_path / "normals", classes=("Normal",), n=4)
    path = external.prepare_sets({"normals": ExternalSpec(data_dir=str(folder))}, DATA, tmp_path / "cache")["normals"]
    assert external.class_counts(path, DATA.classes) == {"COVID": 0, "Normal": 4}


@pytest.mark.parametrize("name", ["Other", "other-site", "", "ext:x", "a b"])
def test_a_bad_name_is_refused(name):
    with pytest.raises(ValueError, match=r"is not valid: use lower-case letters, digits and _"):
        external.check_name(name)


def test_an_empty_folder_is_refused_naming_it(tmp_path):
    (tmp_path / "empty" / "COVID" / "images").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"external set 'empty' folder '.*empty' holds no images"):
        external.plan("empty", ExternalSpec(data_dir=str(tmp_path / "empty")), DATA)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        external.plan("gone", ExternalSpec(data_dir=str(tmp_path / "gone")), DATA)


def test_a_class_the_models_do_not_know_is_refused_naming_it(tmp_path):
    folder = write_kaggle_folder(tmp_path / "other", classes=("COVID", "Viral Pneumonia"))
    with pytest.raises(ValueError, match=r"folder\(s\) 'Viral Pneumonia' name no class the models know "
                                         r"\(COVID, Normal\)"):
        external.plan("other", ExternalSpec(data_dir=str(folder)), DATA)


def test_an_undecodable_image_is_refused_naming_the_file(tmp_path):
    folder = write_kaggle_folder(tmp_path / "other")
    (folder / "Normal" / "images" / "broken.png").write_bytes(b"\x89PNG not really")
    key, build = external.plan("other", ExternalSpec(data_dir=str(folder)), DATA)
    with pytest.raises(ValueError, match=r"external set 'other': unreadable image 'Normal/images/broken.png'"):
        build()


def test_films_of_one_patient_share_a_group_from_metadata_csv(tmp_path):
    folder = write_kaggle_folder(tmp_path / "other", n=6)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    rows = [f"{f},{'p1' if i < 2 else ''}" for i, f in enumerate(files)]     # two films of p1; the rest unnamed
    (folder / "metadata.csv").write_text("file,patient_id\n" + "\n".join(rows) + "\n")
    stored = external.load(external.prepare_sets({"other": ExternalSpec(data_dir=str(folder))}, DATA,
                                                 tmp_path / "cache")["other"])
    group = dict(zip(stored.ids, stored.groups))
    assert group[files[0]] == group[files[1]] == "p1"
    assert all(group[f] == f for f in files[2:])   # without a patient, an image is its own
