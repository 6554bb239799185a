"""A real (tiny) sweep on a local Ray: one Ray trial per configuration trains all its seeds; each seed is its own row
with its own run folder and per-image predictions; worker processes are reused between trials."""
from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

TINY = ["--num-images", "90", "--image-size", "16", "--batch-size", "8", "--cnn-cuts", "block1_drop,block2_drop",
        "--resnet-cuts", "none", "--branch-widths", "4,8", "--head-widths", "16", "--no-parents",
        "--set", "space.include_seed_fusion=false", "--no-explain", "--epochs", "2", "--seeds", "2"]


@pytest.mark.slow
def test_a_sweep_with_two_seeds_writes_a_row_and_predictions_per_seed(tmp_path):
    from sweep.commands.run import add_arguments, build_sweep
    from sweep.tune.driver import run_sweep
    from sweep.tune.space import expand

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sweep = build_sweep(parser.parse_args(TINY))
    trials = expand(sweep)
    assert len(trials) == 4 and all(t["seeds"] == [0, 1] for t in trials)
    assert run_sweep(sweep, trials, out=tmp_path, explain=False) == 0

    table = pd.read_csv(tmp_path / "trials.csv")
    assert len(table) == 8 and set(table["seed"]) == {0, 1}
    assert table["trial_id"].str.fullmatch(r"[0-9a-f]+_\d{5}-s[01]").all()
    ray_trial = table["trial_id"].str.rsplit("-", n=1).str[0]
    assert table.groupby(ray_trial)["seed"].agg(sorted).tolist() == [[0, 1]] * 4
    assert set(table["train_status"]) <= {"completed", "early_stopped"} and table["test_accuracy"].notna().all()
    assert {"test_n", "collapsed", "weights_epoch", "best_epoch", "image_size"} <= set(table.columns)
    for row in table.itertuples():
        assert (tmp_path / "trials" / row.trial_id / "metrics.json").is_file()

    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    assert set(predictions["trial_id"]) == set(table["trial_id"]) and "test" in set(predictions["split"])
    predictions = predictions[predictions["split"] == "test"]  # the quick preset's external and counterfactual
    per_row = predictions.groupby("trial_id").size()
    assert (per_row.sort_index() == table.set_index("trial_id")["test_n"].sort_index()).all()
    accuracy = (predictions["label"] == predictions["pred"]).groupby(predictions["trial_id"]).mean()
    assert (accuracy - table.set_index("trial_id")["test_accuracy"]).abs().max() < 1e-9

    pids = set()
    for result_file in (tmp_path / "ray" / "sweep").glob("*/result.json"):
        pids |= {json.loads(line)["pid"] for line in result_file.read_text().splitlines() if line.strip()}
    assert 1 <= len(pids) < len(trials), "worker processes are reused from one trial to the next"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["trials_total"] == 8 and manifest["ray_trials"] == 4
