"""Grouped, seeded train/val/test assignment: a group (patient, or a set of identical images) never straddles splits."""
from __future__ import annotations

from typing import Sequence

import numpy as np

SPLITS = ("train", "val", "test")


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Validate (train, val, test) fractions: three values >= 0 summing to 1, none zero."""
    f = tuple(float(x) for x in fractions)
    if len(f) != 3:
        raise ValueError(f"split_fractions needs three values (train, val, test), got {fractions}")
    if any(x <= 0 for x in f):
        raise ValueError(f"split_fractions {f} leaves a split empty: every fraction must be > 0")
    if abs(sum(f) - 1.0) > 1e-6:
        raise ValueError(f"split_fractions {f} sum to {sum(f):.6g}, not 1")
    return f  # type: ignore[return-value]


def merge_groups(*keys: Sequence[str]) -> np.ndarray:
    """Union-find over several keyings of the same items (e.g. patient id and content hash): items sharing ANY key
    end in one group. Returns one group id per item: the first key of the group's earliest item."""
    n = len(keys[0])
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for keying in keys:
        first: dict[str, int] = {}
        for i, k in enumerate(keying):
            if k is None or k == "":
                continue
            j = first.setdefault(k, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    return np.array([keys[0][find(i)] or f"item-{find(i)}" for i in range(n)], dtype=object).astype(str)


def grouped_split(labels: np.ndarray, groups: np.ndarray, fractions: Sequence[float], seed: int,
                  strata: np.ndarray | None = None, to_test: np.ndarray | None = None) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per item. Stratified by each group's majority stratum (default: its
    label; e.g. (source, class) keys): within a stratum, groups are shuffled by `seed` and filled into train, then
    val, then test, by image count. A group with any item marked in `to_test` goes wholly to test."""
    f = check_fractions(fractions)
    labels = np.asarray(labels)
    keys = labels if strata is None else np.unique(np.asarray(strata).astype(str), return_inverse=True)[1]
    uniq, inverse = np.unique(np.asarray(groups), return_inverse=True)
    group_key = np.zeros(len(uniq), np.int64)
    group_size = np.bincount(inverse, minlength=len(uniq))
    for g in range(len(uniq)):
        group_key[g] = np.bincount(keys[inverse == g]).argmax()
    forced = np.zeros(len(uniq), bool)
    if to_test is not None:
        forced[np.unique(inverse[np.asarray(to_test, bool)])] = True
    rng = np.random.default_rng((seed, 0x5B117))
    group_split = np.full(len(uniq), 2, np.int64)
    bounds = np.cumsum(f)[:2]
    for key in np.unique(group_key):
        members = rng.permutation(np.nonzero((group_key == key) & ~forced)[0])
        if not len(members):
            continue
        total = group_size[members].sum()
        # a group goes where the midpoint of its images falls on the cumulative [0, 1] line
        mid = (np.cumsum(group_size[members]) - group_size[members] / 2) / total
        group_split[members] = np.searchsorted(bounds, mid, side="right")
    # with few groups the rule above can leave a split empty: move one group there from the split with the most
    for s in range(len(SPLITS)):
        per_split = np.bincount(group_split, minlength=len(SPLITS))
        if per_split[s] == 0 and per_split.max() > 1:
            donor = int(per_split.argmax())
            candidates = np.nonzero((group_split == donor) & ~forced)[0]
            if len(candidates):
                group_split[candidates[np.argmin(group_size[candidates])]] = s
    out = group_split[inverse]
    for s, name in enumerate(SPLITS):
        if not np.any(out == s):
            raise ValueError(f"split_fractions {f} leave the {name} split empty with {len(uniq)} groups "
                             f"of {len(labels)} images; use more images or larger fractions")
    return out


def strata_of(labels: np.ndarray, sources: Sequence[str] | None,
              rare_to_test: int = 0) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(strata, to_test) for grouped_split: by class alone when `sources` is None, else by (source, class); with
    rare_to_test > 0, every (source, class) cell of at most that many images goes wholly to test (the dev set's 11
    Normal films of the COVID source are its own test of the confound)."""
    if sources is None:
        return None, None
    cells = np.array([f"{source}|{label}" for source, label in zip(sources, np.asarray(labels))], dtype=str)
    to_test = None
    if rare_to_test > 0:
        names, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
        to_test = (counts <= rare_to_test)[inverse]
    return cells, to_test
