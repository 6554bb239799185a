"""Scaling-law fits, Pareto front and head fractions on synthetic tables with known answers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sweep.analysis.fits import describe, head_fractions, scaling_fits
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


def test_true_power_law_is_recovered():
    trials = _table(lambda n: 0.05 + 40.0 * n ** -0.4, SIZES)
    fits = scaling_fits(trials, bootstrap=100)
    assert fits["best_by_aic"] == "power"
    e_inf, a, b = fits["forms"]["power"]["params"]
    assert e_inf == pytest.approx(0.05, abs=0.01)
    assert b == pytest.approx(0.4, abs=0.08)
    assert fits["linear_verdict"] == "rejected"
    lo, hi = fits["forms"]["power"]["halving_ci95"]
    assert lo <= fits["forms"]["power"]["halving_accuracy_change"] <= hi
    assert "rejected" in describe(fits)


def test_true_line_is_not_rejected():
    sizes = np.linspace(1e6, 1e7, 10)
    trials = _table(lambda n: 0.30 - 2e-8 * n, sizes, noise=0.003)
    fits = scaling_fits(trials, bootstrap=100)
    assert fits["linear_verdict"] == "not rejected"
    assert fits["forms"]["linear"]["delta_aic"] < 2.5
    assert fits["forms"]["linear"]["params"][1] == pytest.approx(-2e-8, rel=0.25)


def test_too_few_configs_gives_a_note():
    trials = _table(lambda n: 0.1, SIZES[:2])
    assert "note" in scaling_fits(trials)


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
