"""Proof that effects.json is calibrated: simulated star designs in the realistic world (170 patients with 1-4 films,
logit effects film 0.5, patient 0.7, seed 0.12, configuration scatter 0.13; 3 seeds; a collapsed trial now and
then) with known partial effects go through `effects()` as a results folder does. docs/effects.md quotes the rates
of 200 designs: `python -m sweep.analysis.simulate_star --designs 200 --seed 1`."""
from __future__ import annotations

import numpy as np
import pytest

from sweep.analysis import effects as effects_module
from sweep.analysis.simulate_star import StarWorld, calibration

DESIGNS = 100


@pytest.mark.slow
def test_star_effects_cover_the_truth_flag_few_zeros_and_most_large_effects():
    rates = calibration(StarWorld(), DESIGNS, seed=5)
    print(rates)
    assert 0.85 <= rates["coverage"] <= 0.97, rates
    assert rates["zero_flagged"] <= 0.08, rates
    assert rates["large_flagged"] >= 0.60, rates


@pytest.mark.slow
def test_the_same_rates_fail_a_method_that_forgets_the_seeds(monkeypatch):
    """Patients resampled but seed-to-seed variation ignored (as if one seed's accuracy were the configuration's):
    the intervals are too narrow, and the coverage bound above catches it."""
    monkeypatch.setattr(effects_module, "seed_variances", lambda groups: np.zeros(len(groups)))
    rates = calibration(StarWorld(), DESIGNS, seed=5)
    print(rates)
    assert rates["coverage"] < 0.85, rates
