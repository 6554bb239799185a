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
