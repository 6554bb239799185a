"""A real (tiny) sweep of another pair than the seed's: run --backbones xception,mobilenetv2 end to end."""
from __future__ import annotations

import argparse

import pandas as pd
import pytest

TINY = ["--backbones", "xception,mobilenetv2", "--cuts-a", "add,add_1", "--cuts-b", "block_2_add",
        "--num-images", "60", "--image-size", "96", "--batch-size", "8", "--branch-widths", "4", "--head-widths", "8",
        "--no-parents", "--no-explain", "--epochs", "1", "--seeds", "1"]


@pytest.mark.slow  # minutes: two Xception + MobileNetV2 fusions compile and train at 96 px
def test_a_sweep_of_xception_and_mobilenetv2_writes_pair_columns_and_labels(tmp_path):
    from sweep.commands.run import add_arguments, build_sweep
    from sweep.configs.naming import config_label
    from sweep.tune.driver import run_sweep
    from sweep.tune.space import expand

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sweep = build_sweep(parser.parse_args(TINY))
    trials = expand(sweep)
    assert len(trials) == 2
    assert run_sweep(sweep, trials, out=tmp_path, explain=False) == 0

    table = pd.read_csv(tmp_path / "trials.csv")
    assert len(table) == 2 and table["test_accuracy"].notna().all()
    assert set(table["backbone_a"]) == {"xception"} and set(table["backbone_b"]) == {"mobilenetv2"}
    assert sorted(table["cut_a"]) == ["add", "add_1"] and (table["cut_a"] == table["cnn_cut"]).all()
    assert sorted(config_label(row) for row in table.to_dict("records")) == [
        "xception:add+mobilenetv2:block_2_add/b4/h8", "xception:add_1+mobilenetv2:block_2_add/b4/h8"]
