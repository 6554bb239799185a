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
    assert 0.85 <= rates["coverage"] <= 0.95, rates
