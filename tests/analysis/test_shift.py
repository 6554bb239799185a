"""Accuracy under shift from the tables: gaps with intervals, per-source accuracy, shortcut reliance, shift.json
and the report's "Under shift" section."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sweep.analysis import shift
from sweep.analysis.shift_report import build_shift, keep_measurements, section

CLASSES = ("COVID", "Normal")


def _predictions(trial_id: str, split: str, n: int, accuracy: float, rng, prefix: str = "img") -> pd.DataFrame:
    labels = np.array([CLASSES[i % 2] for i in range(n)])
    right = rng.permutation(np.arange(n) < round(accuracy * n))
    preds = np.where(right, labels, np.where(labels == "COVID", "Normal", "COVID"))
    return pd.DataFrame({"trial_id": trial_id, "split": split, "image_id": [f"{prefix}-{i}" for i in range(n)],
                         "label": labels, "pred": preds})


def _sweep(ext_accuracy: dict[str, float], n_test: int = 200, n_ext: int = 150, seeds: int = 2):
    """Two fusion configurations (b16 keeps its accuracy abroad, b512 loses it), `seeds` seeds each."""
    rng = np.random.default_rng(0)
    rows, preds = [], []
    for width, params in ((16, 1000.0), (512, 5000.0)):
        for seed in range(seeds):
            trial_id = f"t{width}-s{seed}"
            test, ext = _predictions(trial_id, "test", n_test, 0.9, rng), \
                _predictions(trial_id, "ext:other", n_ext, ext_accuracy[width], rng, "ext")
            preds += [test, ext]
            rows.append({"trial_id": trial_id, "status": "TERMINATED", "model": "fusion", "cnn_cut": "block2_drop",
                         "resnet_cut": None, "branch_width": width, "head_width": 2048, "seed": seed,
                         "params": params, "flops": params * 10, "test_n": n_test,
                         "test_accuracy": float((test["label"] == test["pred"]).mean()), "test_auc": 0.95,
                         "ext_other_n": n_ext, "ext_other_accuracy": float((ext["label"] == ext["pred"]).mean()),
                         "ext_other_balanced_accuracy": 0.5, "ext_other_auc": 0.5, "collapsed": False})
    return pd.DataFrame(rows), pd.concat(preds, ignore_index=True)


def test_gap_interval_covers_the_gap_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    small = shift.gap_interval((rng.random((2, 100)) < 0.9) * 1.0, (rng.random((2, 100)) < 0.6) * 1.0)
    large = shift.gap_interval((rng.random((2, 2000)) < 0.9) * 1.0, (rng.random((2, 2000)) < 0.6) * 1.0)
    assert small[0] < -0.3 < small[1] and large[0] < -0.3 < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 2


def test_gaps_say_which_configuration_keeps_its_accuracy_and_which_loses_it():
    trials, predictions = _sweep({16: 0.9, 512: 0.5})
    entries = {g["config"]: g for g in shift.gaps(trials, predictions, "other")}
    keeps = next(g for c, g in entries.items() if "/b16/" in c)
    loses = next(g for c, g in entries.items() if "/b512/" in c)
    assert keeps["seeds"] == loses["seeds"] == 2
    assert keeps["lo"] <= 0 <= keeps["hi"] and shift.verdict(keeps) == "keeps"
    assert loses["gap"] == pytest.approx(-0.4, abs=0.02) and loses["hi"] < 0 and shift.verdict(loses) == "loses"


def test_collapsed_trials_are_left_out_and_counted():
    trials, predictions = _sweep({16: 0.9, 512: 0.5})
    trials.loc[trials["trial_id"] == "t512-s0", "collapsed"] = True
    loses = next(g for g in shift.gaps(trials, predictions, "other") if "/b512/" in g["config"])
    assert loses["seeds"] == 1 and loses["collapsed"] == 1


def test_per_source_accuracy_joins_metadata_on_image_id():
    trials, predictions = _sweep({16: 0.9, 512: 0.5})
    sources = {f"img-{i}": ("rare" if i < 10 else "common") for i in range(200)}
    test = predictions[predictions["split"] == "test"].copy()
    wrong = test["image_id"].isin([f"img-{i}" for i in range(10)])  # every model fails the rare source's images
    test.loc[wrong, "pred"] = np.where(test.loc[wrong, "label"] == "COVID", "Normal", "COVID")
    predictions = pd.concat([test, predictions[predictions["split"] != "test"]])
    rows, by_config = shift.per_source(trials, predictions, sources)
    cells = {(r["source"], r["class"]): r for r in rows}
    assert cells[("rare", "COVID")]["n"] == 5 and cells[("rare", "COVID")]["accuracy"] == 0.0
    assert cells[("common", "Normal")]["accuracy"] > 0.8
    assert {r["config"] for r in by_config} == {g["config"] for g in shift.gaps(trials, predictions, "other")}


def test_shortcut_reliance_pairs_each_copy_with_its_original():
    trials, predictions = _sweep({16: 0.9, 512: 0.5})
    copies = predictions[(predictions["split"] == "test") & predictions["image_id"].isin([f"img-{i}" for i in range(80)])]
    copies = copies.assign(split="cf:no_marker")
    flip = copies["trial_id"].str.startswith("t512")  # the wide model fails every copy: it relied on the marker
    copies.loc[flip, "pred"] = np.where(copies.loc[flip, "label"] == "COVID", "Normal", "COVID")
    predictions = pd.concat([predictions, copies], ignore_index=True)
    for trial_id, group in copies.groupby("trial_id"):
        originals = predictions[(predictions["split"] == "test") & (predictions["trial_id"] == trial_id)
                                & predictions["image_id"].isin(group["image_id"])]
        mask = trials["trial_id"] == trial_id
        trials.loc[mask, "cf_no_marker_n"] = len(group)
        trials.loc[mask, "cf_no_marker_accuracy"] = float((group["label"] == group["pred"]).mean())
        trials.loc[mask, "cf_no_marker_source_accuracy"] = float((originals["label"] == originals["pred"]).mean())
    entries = {("b512" in r["config"]): r for r in shift.reliance(trials, predictions, "no_marker")}
    assert entries[True]["copies"] == 0.0 and entries[True]["lo"] > 0.5
    assert entries[False]["reliance"] == pytest.approx(0.0) and entries[False]["lo"] <= 0 <= entries[False]["hi"]


def test_shift_json_keeps_the_probe_and_the_section_says_who_keeps_accuracy(tmp_path):
    trials, predictions = _sweep({16: 0.9, 512: 0.5})
    probe = {"auc": 0.84, "lo": 0.8, "hi": 0.88, "features": ["intensity histogram"], "n_images": 600}
    keep_measurements(tmp_path, confound_probe=probe, entanglement={"counts": [], "cramers_v": 0.9})
    manifest = {"eval_sets": {"ext:other": {"n_images": 150, "classes": {"COVID": 75, "Normal": 75}}}}
    data = build_shift(tmp_path, trials, predictions, manifest)
    written = json.loads((tmp_path / "shift.json").read_text())
    assert written["confound_probe"]["auc"] == 0.84
    gap = written["externals"]["other"]["gap"][0]
    assert {"config", "in_source", "external", "gap", "lo", "hi"} <= set(gap)
    assert written["externals"]["other"]["n_images"] == 150
    text = "\n".join(section(data, trials))
    assert "## Under shift" in text and "AUC **0.840**" in text
    assert "Lose it (interval wholly below 0): cnn:block2_drop" in text and "/b512/" in text.split("Lose it")[1]


def test_report_has_the_under_shift_section_plot_and_shift_json(tmp_path):
    from sweep.analysis.report import build_report
    from sweep.files import write_json_atomic
    from sweep.tune.results import write_trials

    trials, predictions = _sweep({16: 0.9, 512: 0.5})
    write_trials(trials, tmp_path)
    predictions.to_parquet(tmp_path / "predictions.parquet")
    write_json_atomic(tmp_path / "manifest.json", {"sweep_config": {"name": "shifted", "train": {
        "data": {"source": "synthetic", "image_size": 32, "classes": list(CLASSES)}}}})
    keep_measurements(tmp_path, confound_probe={"auc": 0.7, "lo": 0.6, "hi": 0.8, "features": ["histogram"]})
    build_report(tmp_path, bootstrap=0)
    report = (tmp_path / "report.md").read_text()
    assert "## Under shift" in report and "![in-source and external accuracy against size](plots/shift_vs_params.png)" in report
    assert (tmp_path / "plots" / "shift_vs_params.png").stat().st_size > 5000
    shift_json = json.loads((tmp_path / "shift.json").read_text())
    assert shift_json["confound_probe"]["auc"] == 0.7 and len(shift_json["externals"]["other"]["gap"]) == 2
