"""Proof of calibration: simulated sweeps from a known truth (shared test images, seed noise, collapsed trials)
go through the same analysis as a real sweep; the verdict must name the truth's class and the 90% per-halving
interval must cover the true population value (new images, new seeds) about 90% of the time.

The slow test is the evidence quoted in README ("How the verdict is made"); the fast one guards against gross
breakage on every run. Reproduce the rates: `python -m sweep.analysis.simulate --sweeps 200 --seed 1`."""
from __future__ import annotations

import pytest

from sweep.analysis.simulate import TRUTHS, Design, calibration


@pytest.mark.parametrize("name", sorted(TRUTHS))
def test_a_few_simulated_sweeps_get_the_class_and_cover_the_truth(name):
    rates = calibration(TRUTHS[name], Design(n_configs=9, n_images=200), 8, seed=3, n_boot=300)
    assert rates["right"] >= 6 / 8, rates
    assert rates["coverage"] >= 6 / 8, rates
    assert abs(rates["mean_error"]) < 0.5 * rates["median_width"], rates


def test_too_few_configurations_say_insufficient_data_not_a_confident_answer():
    rates = calibration(TRUTHS["saturating"], Design(n_configs=4, collapsed=(0, 0)), 3, seed=4, n_boot=200)
    assert rates["counts"]["insufficient_data"] == 3, rates


@pytest.mark.slow
@pytest.mark.parametrize("name, least_right", [("constant", 0.90), ("linear", 0.80), ("saturating", 0.80)])
def test_verdicts_and_intervals_are_calibrated_over_200_sweeps(name, least_right):
    rates = calibration(TRUTHS[name], Design(), 200, seed=1)
    print(name, rates)
    assert rates["right"] >= least_right, rates
    assert rates["wrong"] <= 0.10, rates
    # no upper bar here: in this world (no scatter, a global form true) the local line mixed into the per-halving
    # interval for issue 22's world makes it conservative (30 sweeps per truth: 100% covered); the realistic
    # world below holds the 85-97% bar
    assert rates["coverage"] >= 0.85, rates


# ---------------------------------------------------------------- issue 22's world
# Patients with 1-4 films, configurations scattered around the curve, one unstable configuration, 6/8/12
# configurations over two decades, truths outside the fitted forms (log-linear, saturating, a knee in log size).
# The full table (>= 200 sweeps per truth) is docs/calibration.md, remade by `fusion-sweep calibrate`.

from sweep.analysis.simulate import WORLD_TRUTHS, World  # noqa: E402


def test_a_few_sweeps_of_the_realistic_world_cover_a_knee_and_leave_a_constant_alone():
    knee = calibration(WORLD_TRUTHS["knee"], World(), 6, seed=5, n_boot=200)
    constant = calibration(WORLD_TRUTHS["constant"], World(), 6, seed=6, n_boot=200)
    assert knee["right"] >= 4 / 6 and knee["coverage"] >= 4 / 6, knee["counts"]
    assert constant["related"] <= 2 / 6 and constant["coverage"] >= 4 / 6, constant["counts"]


@pytest.mark.slow
def test_the_realistic_world_meets_issue_22s_targets_within_binomial_tolerance():
    # 100 sweeps per truth (the docs table has 200): bounds are the targets widened by ~2 binomial sds, which
    # the methods before issue 22 fail by far (knee coverage 25%, saturating 53%, overall 63%)
    rates = {name: calibration(truth, World(), 100, seed=22, n_boot=400) for name, truth in WORLD_TRUTHS.items()}
    for name, r in rates.items():
        print(name, {k: v for k, v in r.items() if k != "runs"})
    assert rates["constant"]["related"] <= 0.13
    assert rates["constant"]["counts"]["insufficient_data"] <= 50
    assert rates["linear"]["right"] >= 0.40
    for curved in ("log_linear", "saturating", "knee"):
        assert rates[curved]["right"] >= 0.50, curved
    for name, r in rates.items():
        assert r["coverage"] >= 0.72, name
    overall = sum(r["coverage"] for r in rates.values()) / len(rates)
    assert 0.82 <= overall <= 0.98


def test_calibrate_command_writes_the_table_docs_quote(tmp_path, capsys):
    from sweep.cli import main

    out = tmp_path / "table.md"
    assert main(["calibrate", "--truth", "constant", "knee", "--sweeps", "2", "--bootstrap", "60", "--n-configs", "6",
                 "--out", str(out)]) == 0
    table = out.read_text()
    assert "| constant |" in table and "| knee |" in table and "coverage at 6 configs" in table
    assert "fusion-sweep calibrate" in table
    assert main(["calibrate", "--sweeps", "0"]) == 2
