"""End to end: a tiny `run --around` trains the star (3 seeds each), records its reference, writes effects.json and
a report that leads with the effects; `analyze --effects` reads the same folder."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from sweep.cli import main

REFERENCE = "cnn:block1_drop/b4/h16"
TINY = ["--num-images", "90", "--image-size", "16", "--batch-size", "8", "--epochs", "2", "--no-explain",
        "--cnn-cuts", "block1_drop,block2_drop,block3_drop"]


@pytest.mark.slow
def test_a_tiny_star_sweep_writes_its_effects_and_analyze_reads_them(tmp_path, capsys):
    out = tmp_path / "star"
    assert main(["run", "--around", REFERENCE, *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"star design around {REFERENCE}" in printed and "skipped: the reference has no ResNet50V2" in printed

    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 5 * 3 and (trials.groupby(["cnn_cut", "branch_width"]).size() == 3).all()
    assert set(trials["model"]) == {"fusion"}  # no parents in a star
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["around"] == REFERENCE and manifest["sweep_config"]["around"] == REFERENCE

    effects = json.loads((out / "effects.json").read_text())
    assert effects["reference"] == REFERENCE
    by_label = {e["config"]: (e["factor"], e["steps"]) for e in effects["effects"]}
    assert sorted(by_label.values()) == sorted({("branch_width", -1): 0, ("branch_width", 1): 0, ("cnn_cut", 1): 0,
                                                ("cnn_cut", 2): 0}.keys() - _all_collapsed(effects))
    assert len(by_label) + len(effects["unestimated"]) == 4  # a tiny run may collapse every seed of one
    assert (out / "plots" / "effects.png").is_file()
    assert (out / "report.md").read_text().split("\n## ")[1].startswith("The answer: a little more or less")

    assert main(["analyze", str(out), "--effects", "--json", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["effects"] == effects["effects"]


def _all_collapsed(effects: dict) -> set:
    """(factor, steps) of the neighbours without an effect because every seed collapsed."""
    words = {"cnn:block2_drop/b4/h16": ("cnn_cut", 1), "cnn:block3_drop/b4/h16": ("cnn_cut", 2),
             "cnn:block1_drop/b2/h16": ("branch_width", -1), "cnn:block1_drop/b8/h16": ("branch_width", 1)}
    return {words[label] for label in effects["unestimated"]}
