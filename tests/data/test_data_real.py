"""The real development set (../shared/data/cxr-real-dev) prepares into three patient-disjoint splits."""
from __future__ import annotations

import pytest

from data import DataSpec, prepare


@pytest.mark.real_data
def test_cxr_real_dev_splits_are_patient_disjoint(real_dev_dir, tmp_path):
    ds = prepare(DataSpec(source="radiography", data_dir=str(real_dev_dir), classes=("COVID", "Normal"),
                          image_size=64, cache_dir=str(tmp_path)))
    counts = ds.counts()
    assert sum(counts[s]["COVID"] for s in counts) == 298 and sum(counts[s]["Normal"] for s in counts) == 359
    assert ds.manifest["with_patient_id"] == 657
    owner = {}
    for split in ("train", "val", "test"):
        arrays = ds.split(split)
        assert len(arrays) > 0 and set(arrays.labels) == {0, 1}
        for group in arrays.groups:
            assert owner.setdefault(group, split) == split, f"{group} in {owner[group]} and {split}"


@pytest.mark.real_data
def test_the_cpu_real_split_sends_the_rare_source_class_cell_wholly_to_test(real_dev_dir, tmp_path):
    """The cpu-real preset's split: stratified by (source, class); the 11 Normal films of the COVID source all test."""
    from data.metadata import image_sources
    from sweep.configs.cpu_real import get_config

    spec = get_config().train.data.replace(data_dir=str(real_dev_dir), cache_dir=str(tmp_path))
    ds = prepare(spec)
    sources = image_sources(real_dev_dir)
    covid_source = sources["COVID/images/COVID-4.png"]
    cell = {s: [i for i, label in zip(ds.split(s).ids, ds.split(s).labels)
                if label == 1 and sources[str(i)] == covid_source] for s in ("train", "val", "test")}
    assert len(cell["test"]) == 11 and not cell["train"] and not cell["val"]
    for split in ("train", "val", "test"):  # both other cells keep about their share in every split
        assert set(ds.split(split).labels) == {0, 1}
    other = dict.fromkeys(("train", "val", "test"), 0)
    for s in other:
        other[s] = sum(1 for i in ds.split(s).ids if sources[str(i)] != covid_source)
    assert abs(other["test"] / sum(other.values()) - 0.2) < 0.05
