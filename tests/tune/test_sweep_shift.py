"""A real (tiny) sweep scored under shift: every seed's selected weights on an external folder, an external
synthetic site and counterfactual copies of the test images, in trials.csv's ext_*/cf_* columns, the predictions
table and shift.json; bad external input is one line before any trial."""
from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

from data.spec import ExternalSpec, SiteSpec
from sweep import UsageError
from tests.data.test_external import write_kaggle_folder

TINY = ["--num-images", "120", "--image-size", "16", "--batch-size", "8", "--cnn-cuts", "block1_drop",
        "--resnet-cuts", "none", "--branch-widths", "4", "--head-widths", "16", "--no-parents",
        "--set", "space.include_seed_fusion=false", "--no-explain", "--epochs", "1", "--seeds", "2"]
SITES = (SiteSpec("marking", class_mix=(0.8, 0.2), marker_rate=(0.9,), intensity_shift=0.08),
         SiteSpec("plain", class_mix=(0.2, 0.8)))


def _sweep(args):
    from sweep.commands.run import _check_data, add_arguments, build_sweep

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return _check_data(build_sweep(parser.parse_args(args)))


@pytest.mark.slow
def test_every_seed_is_scored_on_the_external_and_counterfactual_sets(tmp_path):
    from sweep.tune.driver import run_sweep
    from sweep.tune.space import expand

    folder = write_kaggle_folder(tmp_path / "other_hospital", n=10, size=40)
    sweep = _sweep([*TINY, "--external", f"other={folder}"])
    data = sweep.train.data.replace(sites=SITES)
    sweep = sweep.replace(train=sweep.train.replace(data=data), externals={
        **sweep.externals, "site_c": ExternalSpec(source="synthetic", site=SiteSpec("c", marker_rate=(0.5,)),
                                                  num_images=30)})
    out = tmp_path / "results"
    assert run_sweep(sweep, expand(sweep), out=out, explain=False) == 0

    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 2
    for column in ("ext_other_n", "ext_other_accuracy", "ext_other_balanced_accuracy", "ext_other_auc",
                   "ext_site_c_n", "ext_site_c_accuracy", "cf_no_marker_n", "cf_no_marker_accuracy",
                   "cf_no_shift_n", "shortcut_reliance"):
        assert table[column].notna().all(), column
    assert (table["ext_other_n"] == 10).all() and (table["ext_site_c_n"] == 30).all()

    predictions = pd.read_parquet(out / "predictions.parquet")
    assert set(predictions["split"]) == {"test", "ext:other", "ext:site_c", "cf:no_marker", "cf:no_shift"}
    for row in table.itertuples():
        mine = predictions[(predictions["trial_id"] == row.trial_id) & (predictions["split"] == "ext:other")]
        assert len(mine) == 10 and abs((mine["label"] == mine["pred"]).mean() - row.ext_other_accuracy) < 1e-9
        assert set(mine["image_id"]) == {p.relative_to(folder).as_posix() for p in folder.rglob("*.png")}
        copies = predictions[(predictions["trial_id"] == row.trial_id) & (predictions["split"] == "cf:no_marker")]
        test = predictions[(predictions["trial_id"] == row.trial_id) & (predictions["split"] == "test")]
        assert set(copies["image_id"]) <= set(test["image_id"]) and len(copies) == row.cf_no_marker_n

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["eval_sets"]["ext:other"]["n_images"] == 10
    assert manifest["eval_sets"]["ext:other"]["data_dir"] == str(folder.resolve())
    shift = json.loads((out / "shift.json").read_text())
    assert set(shift["externals"]) == {"other", "site_c"} and shift["externals"]["other"]["gap"]
    assert 0.5 <= shift["confound_probe"]["auc"] <= 1 and shift["confound_probe"]["features"]
    assert "no_marker" in shift["counterfactuals"]
    assert {"source", "class", "n", "accuracy"} <= set(shift["per_source"][0])
    assert "Under shift" in (out / "report.md").read_text()


def test_bad_external_input_is_one_line_before_any_trial(tmp_path):
    with pytest.raises(UsageError, match="is not valid: use lower-case letters"):
        _sweep([*TINY, "--external", f"Other={tmp_path}"])
    with pytest.raises(UsageError, match="expects NAME=DIR"):
        _sweep([*TINY, "--external", "other"])
    (tmp_path / "empty" / "COVID" / "images").mkdir(parents=True)
    with pytest.raises(UsageError, match="holds no images"):
        _sweep([*TINY, "--external", f"empty={tmp_path / 'empty'}"])
    folder = write_kaggle_folder(tmp_path / "three", n=6, classes=("COVID", "Normal", "Viral Pneumonia"))
    with pytest.raises(UsageError, match=r"'Viral Pneumonia' name no class the models know"):
        _sweep([*TINY, "--external", f"three={folder}"])


def test_an_undecodable_external_image_stops_the_run_before_the_trials(tmp_path):
    from sweep.tune.driver import _prepare_data

    folder = write_kaggle_folder(tmp_path / "other", n=4)
    (folder / "Normal" / "images" / "broken.png").write_bytes(b"\x89PNG not really")
    sweep = _sweep([*TINY, "--external", f"other={folder}", "--set", f"train.data.cache_dir={tmp_path / 'cache'}"])
    with pytest.raises(UsageError, match=r"external set 'other': unreadable image 'Normal/images/broken.png'"):
        _prepare_data(sweep, print)
    assert not list((tmp_path / "cache").glob("synthetic-*")), "the dataset is not prepared after a bad external set"
