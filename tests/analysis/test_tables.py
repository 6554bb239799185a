"""Per-configuration tables, the Pareto front and the parents' head fractions on synthetic tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sweep.analysis.parents import head_fractions
from sweep.analysis.tables import config_table, pareto_front


def _table(err_of_size, sizes, seeds=3, noise=0.002, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    rows = []
    for i, n in enumerate(sizes):
        for s in range(seeds):
            err = err_of_size(n) + rng.normal(0, noise)
            rows.append({"trial_id": f"t{i}_{s}", "model": "fusion", "cnn_cut": f"c{i}", "resnet_cut": None,
                         "branch_width": 256, "head_width": 256, "seed": s, "params": n, "flops": 10 * n,
                         "latency_ms": 1.0, "test_accuracy": 1 - err})
    return pd.DataFrame(rows)


SIZES = np.geomspace(1e5, 3e8, 10)


def test_pareto_front_drops_dominated_configs():
    configs = pd.DataFrame({"label": list("abcd"), "params": [1, 2, 3, 4],
                            "test_accuracy_mean": [0.80, 0.78, 0.90, 0.85]})
    assert pareto_front(configs)["label"].tolist() == ["a", "c"]


def test_config_table_aggregates_seeds():
    trials = _table(lambda n: 0.1, SIZES[:3], seeds=3, noise=0.0)
    table = config_table(trials)
    assert len(table) == 3 and (table["seeds"] == 3).all()
    assert table["test_accuracy_mean"].tolist() == pytest.approx([0.9] * 3)


def test_parent_heads_match_the_seed():
    heads = head_fractions(256)
    assert heads["cnn"]["params"] == 69_244_610
    assert heads["resnet50v2"]["params"] == 292_006_402
    assert heads["cnn"]["head_fraction"] == pytest.approx(0.97, abs=0.01)
    assert heads["resnet50v2"]["head_fraction"] == pytest.approx(0.92, abs=0.01)
