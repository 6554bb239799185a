"""report.html built from contract-shaped results folders: every section from its file, a note when a file is absent,
hollow collapsed rows, and no pixels of real X-rays. (test_html_browser.py renders it in Chromium.)"""
from __future__ import annotations

import json
import re
import shutil

import pandas as pd

from html_fixtures import FUSIONS, fusion_label, write_results
from sweep.analysis.html import build_html
from sweep.analysis.html.contract import load_tables
from sweep.analysis.html.points import config_means, role_of, seed_points
from sweep.analysis.html.size_plot import styled

QUICK_PRESET_LIMIT = 3 * 2**20


def payload_of(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    return json.loads(match.group(1).replace("<\\/", "</"))


def test_a_full_folder_gives_every_section_within_the_size_limit(tmp_path):
    folder = write_results(tmp_path / "sweep")
    path = build_html(folder)
    page = path.read_text()
    assert path == folder / "report.html" and path.stat().st_size < QUICK_PRESET_LIMIT
    assert "<script src=" not in page and 'rel="stylesheet" href' not in page  # everything inlined
    data = payload_of(page)
    keys = [c["key"] for c in data["trials"]["columns"]]
    assert len(data["trials"]["rows"]) == 24
    assert {"config", "seed", "params", "flops", "latency_ms", "test_accuracy", "ext_site_b_accuracy",
            "collapsed"} <= set(keys)
    labels = {row[keys.index("config")] for row in data["trials"]["rows"]}
    assert {fusion_label(*f[:3]) for f in FUSIONS} <= labels
    assert "Accuracy rises with the log of params" in page  # the verdict sentence of scaling.json
    assert "Under shift to site_b" in page and "gap per configuration" in page and "Confound probe" in page
    browser = data["explanations"]
    assert browser["synthetic"] and browser["images"] and browser["models"]
    assert all(image["src"].startswith("data:image/png;base64,") and image["lesion_path"] for image in browser["images"])
    assert any(image["marker_box"] for image in browser["images"])
    assert all(entry["overlay"].startswith("data:image/png") for maps in browser["maps"].values() for entry in maps.values())
    assert all(" · seed " in model["name"] and "abcde_" not in model["name"] for model in browser["models"])


def test_a_folder_with_only_the_trials_table_still_renders_with_a_note_per_section(tmp_path):
    folder = write_results(tmp_path / "bare", external=(), with_scaling=False, with_explanations=False)
    for name in ("manifest.json", "trials.parquet"):
        (folder / name).unlink()
    trials = pd.read_csv(folder / "trials.csv").drop(columns=["collapsed"])
    trials.to_csv(folder / "trials.csv", index=False)
    page = build_html(folder).read_text()
    assert "No scaling fit against parameters in scaling.json." in page
    assert "No external sets in this sweep" in page
    assert "No explanations in this folder" in page
    assert "none is drawn hollow" in page
    assert len(payload_of(page)["trials"]["rows"]) == 24


def test_an_older_scaling_json_is_noted_instead_of_plotted(tmp_path):
    folder = write_results(tmp_path / "old", with_scaling=False)
    (folder / "scaling.json").write_text(json.dumps({"params": {"best_by_aic": "log"}, "flops": {}}))
    page = build_html(folder).read_text()
    assert "scaling.json is not in the contract" in page
    assert "No scaling fit against parameters" in page


def test_real_xray_explanations_show_scores_and_never_pixels(tmp_path):
    folder = write_results(tmp_path / "real", synthetic=False)
    synthetic = write_results(tmp_path / "synthetic")  # plant image files where a leak would read them
    shutil.copytree(synthetic / "explanations" / "images", folder / "explanations" / "images")
    page = build_html(folder).read_text()
    browser = payload_of(page)["explanations"]
    assert not browser["synthetic"] and browser["maps"]
    assert all("src" not in image and "lesion_path" not in image for image in browser["images"])
    assert all("overlay" not in entry for maps in browser["maps"].values() for entry in maps.values())
    assert "data:image/png" not in json.dumps(browser)
    assert "Real X-rays: scores only" in page


def test_collapsed_seeds_are_hollow_and_left_out_of_their_configuration_mean(tmp_path):
    tables = load_tables(write_results(tmp_path / "sweep"))
    points = seed_points(tables.trials, ["test"])
    collapsed = points[points["collapsed"]]
    assert len(collapsed) == 1
    assert styled(points, "collapsed")["fill"][collapsed.index[0]] == 0.0
    means = config_means(points, "test").set_index("config")
    config = collapsed["config"].iloc[0]
    others = points[(points["config"] == config) & ~points["collapsed"]]["acc_test"]
    assert means.loc[config, "mean"] == others.mean() and means.loc[config, "seeds"] == 2
    assert means.loc[config, "lo"] < means.loc[config, "mean"] < means.loc[config, "hi"]


def test_parents_and_the_seed_fusion_are_marked_apart_from_other_fusions():
    fusion = {"model": "fusion", "cnn_cut": "block3_drop", "resnet_cut": "conv3_block4_2_relu", "branch_width": 2048.0,
              "head_width": 2048}
    assert role_of(fusion) == "seed's fusion"
    assert role_of({**fusion, "branch_width": 512}) == "fusion"
    assert role_of({"model": "cnn"}) == "CNN parent" and role_of({"model": "resnet50v2"}) == "ResNet50V2 parent"


def test_the_report_command_writes_report_html_beside_report_md(tmp_path):
    from sweep.cli import main

    folder = write_results(tmp_path / "sweep")
    assert main(["report", str(folder), "--bootstrap", "10"]) == 0
    assert (folder / "report.md").is_file() and (folder / "report.html").is_file()
