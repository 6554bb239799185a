"""`fusion-sweep analyze` and its analysis: the contract object, collapsed trials, bad input, no JAX."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sweep.analysis import compare, evidence, inputs, scaling
from sweep.analysis.answer import analyze
from sweep.analysis.simulate import SEED_FUSION_PARAMS, Design, Truth, simulate_sweep, write_sweep
from sweep.cli import main

VERDICTS = {"no_relation", "linear", "nonlinear", "insufficient_data"}


def sweep_tables(kind="power_law", seed=0, **design):
    truth = {"power_law": Truth("power_law", 0.65, 0.92, 0.5), "constant": Truth("constant", 0.8),
             "linear": Truth("linear", 0.7, 0.9)}[kind]
    return simulate_sweep(truth, Design(**design), np.random.default_rng(seed))


@pytest.fixture(scope="module")
def saturating(tmp_path_factory):
    trials, predictions = sweep_tables("power_law", seed=3, collapsed=(2, 2))
    return write_sweep(tmp_path_factory.mktemp("saturating"), trials, predictions)


def test_analyze_prints_the_verdict_and_writes_the_contract_object(saturating, tmp_path, capsys):
    out = tmp_path / "analysis.json"
    assert main(["analyze", str(saturating), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert printed.splitlines()[0] == result["verdict_text"]
    assert result["verdict"] == "nonlinear" and result["size"] == "params" and result["split"] == "test"
    assert (result["n_configs"], result["n_trials"], result["n_collapsed"]) == (10, 28, 2)
    assert set(result["forms"]) == {"constant", "linear", "log_linear", "power_law"}
    for fit in result["forms"].values():
        assert {"aicc", "loo", "at_bound", "params"} <= set(fit) and fit["loo"] >= 0
    halving = result["per_halving"]
    assert halving["at"] == SEED_FUSION_PARAMS and halving["level"] == 0.9
    assert halving["lo"] < halving["estimate"] < halving["hi"] and halving["estimate"] < 0   # halving costs accuracy
    assert len(result["curve"]) >= 20
    assert all(p["lo"] <= p["estimate"] <= p["hi"] for p in result["curve"])
    assert "not distinguishable from the best" in printed


def test_collapsed_trials_come_from_predictions_and_stay_out_of_the_fit(saturating):
    trials, predictions = inputs.read_tables(saturating)
    result = analyze(trials, predictions, n_boot=200, leave_one_out=False)
    shares = predictions.groupby("trial_id")["pred"].agg(lambda p: p.value_counts(normalize=True).iloc[0])
    assert sorted(result["collapsed_trials"]) == sorted(shares[shares > 0.98].index)
    assert result["n_trials"] == len(trials) - 2 and len(result["against_best"]) == 10
    assert "2 collapsed trials left out" in result["verdict_text"]


def test_collapsed_column_is_used_when_there_are_no_predictions():
    trials, _ = sweep_tables("constant", seed=4, collapsed=(0, 0))
    trials["collapsed"] = False
    trials.loc[0, "collapsed"] = True
    result = analyze(trials, None, n_boot=200, leave_one_out=False)
    assert result["collapsed_trials"] == [trials.loc[0, "trial_id"]] and not result["per_image"]
    assert "could not be modelled" in result["verdict_text"]
    assert result["verdict"] in VERDICTS - {"insufficient_data"}


def test_too_few_configurations_or_seeds_is_insufficient_data_not_an_error(tmp_path, capsys):
    trials, predictions = sweep_tables("linear", seed=5, n_configs=4, collapsed=(0, 0))
    write_sweep(tmp_path / "few", trials, predictions)
    assert main(["analyze", str(tmp_path / "few")]) == 0
    assert "need 5" in capsys.readouterr().out
    trials, predictions = sweep_tables("linear", seed=6, seeds=1, collapsed=(0, 0))
    result = analyze(trials, predictions, n_boot=200, leave_one_out=False)
    assert result["verdict"] == "insufficient_data"
    assert any("2 or more seeds" in m for m in result["missing"])
    assert result["per_halving"]["lo"] is not None      # still described, with an interval


def test_descriptive_intervals_from_three_single_seed_points_stay_within_what_is_possible():
    for seed in (0, 2):   # these draws put the unclipped lower end of the per-halving interval beyond -100 points
        trials, _ = sweep_tables("power_law", seed=seed, n_configs=3, seeds=1, n_images=132, collapsed=(0, 0))
        result = analyze(trials.assign(collapsed=False), None, n_boot=300, leave_one_out=False)
        halving = result["per_halving"]
        assert result["verdict"] == "insufficient_data"
        assert -100 <= halving["lo"] <= halving["estimate"] <= halving["hi"] <= 100
        assert all(0 <= p["lo"] <= p["estimate"] <= p["hi"] <= 100 for p in result["curve"])


@pytest.mark.parametrize("damage, words", [
    (lambda t, p: (t.drop(columns="test_n"), p), "test_n"),
    (lambda t, p: (t.drop(columns=["params", "seed"]), p), "seed, params"),
    (lambda t, p: (t.assign(test_accuracy=np.nan), p), "no trial has test_accuracy"),
    (lambda t, p: (t, p.replace({"trial_id": {"sim03-s1": "ghost"}})), "ghost"),
    (lambda t, p: (t.assign(test_accuracy=t["test_accuracy"].where(t.index != 4, 0.123)), p), "does not match"),
    (lambda t, p: (t, p[~((p["trial_id"] == "sim05-s0") & (p["image_id"] == "sim/0007.png"))]), "same images"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, damage, words):
    trials, predictions = damage(*sweep_tables("constant", seed=7, n_images=120))
    write_sweep(tmp_path, trials, predictions)
    assert main(["analyze", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_missing_folder_and_bad_flags_are_one_line(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    trials, predictions = sweep_tables("constant", seed=8)
    write_sweep(tmp_path, trials, predictions)
    assert main(["analyze", str(tmp_path), "--split", "external"]) == 2
    assert "ext:NAME" in capsys.readouterr().err


def test_external_split_reads_its_own_columns_and_predictions():
    trials, predictions = sweep_tables("power_law", seed=9, collapsed=(0, 0))
    ext = predictions.assign(split="ext:site_b")
    trials["ext_site_b_accuracy"] = trials["test_accuracy"]
    trials["ext_site_b_n"] = trials["test_n"]
    result = analyze(trials, pd.concat([predictions, ext]), split="ext:site_b", n_boot=200, leave_one_out=False)
    assert result["split"] == "ext:site_b" and result["per_image"]
    assert "accuracy on ext:site_b" in result["verdict_text"]
    with pytest.raises(inputs.InputError, match="ext_other_accuracy"):
        analyze(trials, predictions, split="ext:other")


def test_reference_size_is_the_seed_fusion_then_the_median_then_at():
    trials, predictions = sweep_tables("linear", seed=10, collapsed=(0, 0))
    assert analyze(trials, predictions, n_boot=100, leave_one_out=False)["per_halving"]["at"] == SEED_FUSION_PARAMS
    result = analyze(trials, predictions, at=2e6, n_boot=100, leave_one_out=False)
    assert result["per_halving"]["at"] == 2e6 and "2,000,000 parameters" in result["verdict_text"]
    others = trials[trials["params"] != SEED_FUSION_PARAMS]
    result = analyze(others, predictions[predictions["trial_id"].isin(others["trial_id"])], n_boot=100,
                     leave_one_out=False)
    config_sizes = np.sort(others["params"].unique())
    assert result["per_halving"]["at"] == config_sizes[(len(config_sizes) - 1) // 2]
    assert result["per_halving"]["at_is"] == "the median configuration"


def test_a_fit_at_its_bound_never_carries_the_verdict():
    fitted = {"constant": {"aicc": 10.0, "at_bound": False}, "linear": {"aicc": 4.0, "at_bound": False},
              "log_linear": {"aicc": 3.0, "at_bound": False}, "power_law": {"aicc": -20.0, "at_bound": True}}
    assert scaling.verdict([], 0.001, fitted) == ("linear", "linear")       # a curve must gain > 2 AICc
    fitted["log_linear"]["aicc"] = 1.5
    assert scaling.verdict([], 0.001, fitted) == ("nonlinear", "log_linear")
    assert scaling.verdict([], 0.2, fitted) == ("no_relation", "constant")
    assert scaling.verdict(["only 3 configurations"], 0.001, fitted) == ("insufficient_data", None)


def test_pairing_on_shared_images_narrows_the_gap_between_configurations():
    rng = np.random.default_rng(11)
    easy = rng.random(400) < 0.8                         # the same images are easy for every configuration
    noise = lambda: (rng.random((3, 400)) < 0.1)
    strong = easy[None] ^ noise()
    weak = easy[None] ^ noise() ^ (rng.random((3, 400)) < 0.08)
    same = easy[None] ^ noise()
    means, cov, seeds = evidence._from_predictions([g.astype(float) for g in (strong, weak, same)])
    gap_var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    assert cov[0, 1] > 0 and gap_var < cov[0, 0] + cov[1, 1]
    ev = evidence.Evidence([{"model": "fusion"}] * 3, np.array([1e5, 1e6, 1e7]), means, seeds, cov, True,
                           [["a"], ["b"], ["c"]])
    rows = {r["config"]: r for r in compare.against_best(ev, ["strong", "weak", "same"])}
    assert rows["weak"]["distinguishable"]
    assert not rows["strong"]["distinguishable"] and not rows["same"]["distinguishable"]


def test_holm_adjusts_step_down():
    assert compare.holm(np.array([0.01, 0.04, 0.03])).tolist() == pytest.approx([0.03, 0.06, 0.06])


def test_analyze_never_imports_jax_flax_or_ray(saturating):
    code = ("import sys; from sweep.cli import main; rc = main(['analyze', sys.argv[1]]); "
            "bad = [m for m in ('jax', 'flax', 'ray') if m in sys.modules]; print('HEAVY', bad); "
            "sys.exit(rc or bool(bad))")
    done = subprocess.run([sys.executable, "-c", code, str(saturating)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HEAVY []" in done.stdout
