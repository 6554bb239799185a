"""The patient-grouped split stratified by (source, class), and rare (source, class) cells sent wholly to test:
the dev set's 11 Normal films of the COVID source must all reach the test split."""
from __future__ import annotations

import numpy as np

from data.splits import grouped_split


def _dev_like():
    """298 COVID of source A, 348 Normal of source B, 11 Normal of source A; about 1.5 images per patient."""
    cells = [("A", 0, 298), ("B", 1, 348), ("A", 1, 11)]
    labels, sources, groups = [], [], []
    for source, label, n in cells:
        for i in range(n):
            labels.append(label)
            sources.append(source)
            groups.append(f"{source}{label}-{i // 2 if source == 'A' and label == 0 else i}")
    return np.array(labels), np.array(sources), np.array(groups)


def test_rare_cells_go_wholly_to_test_and_patients_never_straddle():
    labels, sources, groups = _dev_like()
    strata = np.char.add(sources, labels.astype(str))
    rare = strata == "A1"
    split = grouped_split(labels, groups, (0.7, 0.1, 0.2), 0, strata=strata, to_test=rare)
    assert (split[rare] == 2).all()
    for g in np.unique(groups):
        assert len(set(split[groups == g])) == 1
    for cell in ("A0", "B1"):  # the other cells keep their proportions
        shares = np.bincount(split[strata == cell], minlength=3) / (strata == cell).sum()
        assert abs(shares[0] - 0.7) < 0.05 and abs(shares[2] - 0.2) < 0.05


def test_source_class_strata_give_each_cell_its_share_of_test():
    labels, sources, groups = _dev_like()
    strata = np.char.add(sources, labels.astype(str))
    by_cell = grouped_split(labels, groups, (0.7, 0.1, 0.2), 0, strata=strata)
    assert 1 <= (by_cell[strata == "A1"] == 2).sum() <= 4  # about 20% of 11, not left to chance within Normal
    assert (by_cell[strata == "A1"] == 0).sum() >= 6
