"""What a multi-seed trial hands Ray and takes back: per-seed checkpoints and result files, and the per-image
predictions the driver collects from Ray's copy when the results folder is not shared (no training, no Ray start)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from sweep.tune.collect import collect_predictions
from sweep.tune.handover import staged, take_back

TRIAL = {"model": "fusion", "cnn_cut": "block1_drop", "resnet_cut": None, "branch_width": 16, "head_width": 16,
         "seeds": [0, 1]}


def _finished_run(folder: Path, seed: int) -> None:
    (folder / "checkpoints" / "3").mkdir(parents=True)
    (folder / "checkpoints" / "3" / "arrays").write_bytes(b"weights of seed %d" % seed)
    (folder / "metrics.json").write_text('{"test_accuracy": 0.5}')
    (folder / "config.json").write_text("{}")
    pd.DataFrame({"split": ["test", "test"], "image_id": ["a.png", "b.png"], "label": ["COVID", "Normal"],
                  "pred": ["COVID", "COVID"], "prob_COVID": [0.9, 0.6], "prob_Normal": [0.1, 0.4]}).to_parquet(
        folder / "predictions.parquet")


def test_staged_checkpoints_and_results_restore_each_seed_into_an_empty_folder(tmp_path):
    runs = {seed: tmp_path / "node_a" / f"t-s{seed}" for seed in (0, 1)}
    for seed, folder in runs.items():
        _finished_run(folder, seed)
    elsewhere = {seed: tmp_path / "node_b" / f"t-s{seed}" for seed in (0, 1)}
    with staged(runs, final=False) as folder:
        assert sorted(p.name for p in folder.iterdir()) == ["s0", "s1"]
        assert not (folder / "s0" / "metrics.json").exists()
        assert take_back(folder, elsewhere) == [0, 1]
        staging = folder
    assert not staging.exists(), "the staging folder is removed once Ray has copied it"
    assert (elsewhere[1] / "checkpoints" / "3" / "arrays").read_bytes() == b"weights of seed 1"
    with staged(runs, final=True) as folder:  # the end: the seed's one checkpoint and its result files
        assert (folder / "s0" / "checkpoints" / "3" / "arrays").is_file()
        take_back(folder, elsewhere)
    assert (elsewhere[0] / "predictions.parquet").is_file() and (elsewhere[0] / "metrics.json").is_file()
    (elsewhere[0] / "checkpoints" / "3" / "arrays").write_bytes(b"newer")
    with staged(runs, final=False) as folder:
        assert take_back(folder, elsewhere) == []  # what a folder already has is never overwritten
    assert (elsewhere[0] / "checkpoints" / "3" / "arrays").read_bytes() == b"newer"


def test_a_restarted_seed_takes_rays_checkpoint_only_when_it_is_newer_than_its_own(tmp_path):
    ray_side = {0: tmp_path / "ray" / "t-s0"}
    _finished_run(ray_side[0], 0)  # Ray holds epoch 3
    here = {0: tmp_path / "node" / "t-s0"}
    (here[0] / "checkpoints" / "1").mkdir(parents=True)  # a stale epoch-1 checkpoint from an earlier attempt
    with staged(ray_side, final=False) as folder:
        assert take_back(folder, here) == [0]
    assert sorted(p.name for p in (here[0] / "checkpoints").iterdir()) == ["3"]
    (here[0] / "checkpoints" / "3").rename(here[0] / "checkpoints" / "5")  # this node got further than Ray's copy
    with staged(ray_side, final=False) as folder:
        assert take_back(folder, here) == []
    assert sorted(p.name for p in (here[0] / "checkpoints").iterdir()) == ["5"]


def test_the_driver_collects_predictions_from_the_final_checkpoint_when_run_folders_are_elsewhere(tmp_path):
    from ray import tune

    worker = {seed: tmp_path / "worker" / f"abc_00001-s{seed}" for seed in (0, 1)}
    for seed, folder in worker.items():
        _finished_run(folder, seed)
    out = tmp_path / "results"
    with staged(worker, final=True) as folder:
        result = SimpleNamespace(config={"trial": TRIAL}, metrics={"final": True, "trial_id": "abc_00001"},
                                 checkpoint=tune.Checkpoint.from_directory(str(folder)), path="x")
        table = collect_predictions([result], out, say=print)
    assert table is not None and len(table) == 4
    assert list(table.columns[:5]) == ["trial_id", "split", "image_id", "label", "pred"]
    assert sorted(table["trial_id"].unique()) == ["abc_00001-s0", "abc_00001-s1"]
    assert pd.read_parquet(out / "predictions.parquet").equals(table)
    assert (out / "trials" / "abc_00001-s1" / "metrics.json").is_file()  # the row's run folder, completed


def test_rows_without_a_final_report_have_no_predictions_and_are_not_an_error(tmp_path):
    stopped = SimpleNamespace(config={"trial": TRIAL}, metrics={"final": False, "trial_id": "abc_00002"},
                              checkpoint=None, path="x")
    assert collect_predictions([stopped], tmp_path, say=print) is None
    assert not (tmp_path / "predictions.parquet").exists()
