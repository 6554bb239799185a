"""Partial effects (effects.json): paired on the same patients, seeds resampled, one entry per one-factor neighbour, and
the report leads with them for a star design. Calibration over many simulated designs: test_effects_calibration.py."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sweep.analysis.effects import effects, holm, paired_deltas
from sweep.analysis.inputs import InputError
from sweep.analysis.simulate import write_sweep
from sweep.analysis.simulate_star import StarWorld, simulate_star
from sweep.analysis.world import clustered_correctness, draw_patients
from sweep.configs.naming import SEED_FUSION, config_label

SEED_LABEL = config_label(SEED_FUSION)


def _coverage(use_patients: bool, reps: int = 200) -> float:
    """Two configurations with the same population accuracy that suit different patients (a configuration x
    patient interaction), 3 seeds each, 60 patients with 4 films: how often the 90% interval holds 0."""
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(reps):
        codes = draw_patients(rng, 60, (4, 4))
        suits = rng.normal(0, 1.0, (2, 60))[:, codes]            # per configuration and patient
        logits = 1.0 + np.repeat(suits, 3, axis=0) + rng.normal(0, 0.1, (6, 1))
        y = clustered_correctness(rng, logits, codes)
        (row,) = paired_deltas({"ref": y[:3], "nb": y[3:]}, codes if use_patients else np.arange(len(codes)), "ref",
                               ["nb"], n_boot=300, rng=rng)
        hits += row["lo"] <= 0 <= row["hi"]
    return hits / reps


def test_the_paired_interval_resamples_patients_and_covers_where_films_as_units_do_not():
    patients, films = _coverage(True), _coverage(False)
    assert patients >= 0.83, patients
    assert films <= patients - 0.06, (films, patients)


def test_holm_adjusts_step_down_and_keeps_order():
    assert np.allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


@pytest.fixture(scope="module")
def star_tables():
    return simulate_star(StarWorld(collapsed=(1, 1)), np.random.default_rng(0))


def test_each_one_factor_neighbour_gets_a_paired_effect_in_the_contracts_form(star_tables):
    trials, predictions, truth = star_tables
    result = effects(trials, predictions, n_boot=400)
    assert result["reference"] == SEED_LABEL  # the configuration with the most one-factor neighbours
    assert {r["config"] for r in result["effects"]} == set(truth)
    steps = {(r["factor"], r["to"]): r["steps"] for r in result["effects"]}
    assert steps[("cnn_cut", "block4_drop")] == 1 and steps[("resnet_cut", "conv3_block2_out")] == -2
    assert steps[("branch_width", 1024)] == -1 and isinstance(result["effects"][-1]["to"], int)
    for r in result["effects"]:
        assert {"factor", "from", "to", "steps", "n_seeds", "delta", "lo", "hi", "level", "p_holm"} <= set(r)
        assert r["lo"] < r["delta"] < r["hi"] and r["level"] == 0.9 and r["p_holm"] >= r["p"] - 1e-9
    assert result["n_collapsed"] == 1 and sum(r["n_seeds"] for r in result["effects"]) + \
        result["reference_n_seeds"] == len(trials) - 1
    assert result["n_patients"] == 170 and result["n_images"] > 170


def test_a_reference_outside_the_sweep_or_without_neighbours_is_one_line(star_tables):
    trials, predictions, _ = star_tables
    with pytest.raises(InputError, match="not a fusion configuration of this sweep"):
        effects(trials, predictions, reference="cnn:block3_drop/b64/h2048")
    alone = trials[[config_label(r) == SEED_LABEL for r in trials.to_dict("records")]]
    with pytest.raises(InputError, match="no one-factor neighbours"):
        effects(alone, predictions[predictions["trial_id"].isin(alone["trial_id"])])


def test_patient_ids_in_predictions_are_the_resampling_unit(star_tables):
    trials, predictions, _ = star_tables
    with_patients = effects(trials, predictions, n_boot=200)
    films = effects(trials, predictions.drop(columns="patient_id"), n_boot=200)
    assert with_patients["n_patients"] == 170 and films["n_patients"] == films["n_images"]
    assert [r["delta"] for r in with_patients["effects"]] == [r["delta"] for r in films["effects"]]


def test_analyze_effects_writes_the_contracts_json_and_a_star_report_leads_with_it(star_tables, tmp_path, capsys):
    from sweep.analysis.report import build_report
    from sweep.cli import main

    trials, predictions, _ = star_tables
    write_sweep(tmp_path, trials, predictions)
    (tmp_path / "manifest.json").write_text(json.dumps({"around": SEED_LABEL, "around_skipped": ["branch width 4096"]}))
    assert main(["analyze", str(tmp_path), "--effects", "--json", str(tmp_path / "out.json")]) == 0
    printed = capsys.readouterr().out
    assert "one CNN block deeper (block4_drop):" in printed and "90% interval" in printed
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["reference"] == SEED_LABEL and len(written["effects"]) == 9

    build_report(tmp_path, bootstrap=50)
    report = (tmp_path / "report.md").read_text()
    assert report.index("## The answer: a little more or less of either parent") < report.index("## The answer about")
    assert "Not trained: branch width 4096" in report and (tmp_path / "plots" / "effects.png").is_file()
    assert json.loads((tmp_path / "effects.json").read_text())["effects"] == written["effects"]
    assert 'id="effects"' in (tmp_path / "report.html").read_text()


def test_reference_without_effects_is_a_usage_error(tmp_path, capsys):
    from sweep.cli import main

    assert main(["analyze", str(tmp_path), "--reference", SEED_LABEL]) == 2
    assert "--reference is for --effects" in capsys.readouterr().err
