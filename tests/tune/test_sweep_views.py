"""A real tiny `fusion-sweep run` seen the ways a person sees it: the log's live status and summary lines,
report.html (with its explanation browser) in headless Chromium, TensorBoard event files per row, and one MLflow
run per row."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "analysis"))  # the Chromium driver of the report.html tests
TINY = ["--num-images", "90", "--image-size", "16", "--batch-size", "8", "--cnn-cuts", "block1_drop,block2_drop",
        "--resnet-cuts", "none", "--branch-widths", "8,16", "--head-widths", "16", "--no-parents",
        "--set", "space.include_seed_fusion=false", "--epochs", "3", "--explain-images", "2",
        "--explain-max-evals", "20"]
STATUS_LINE = re.compile(r"^  cnn:block\d_drop/b\d+/h16 seeds 0,1,2  epoch \d/3  step \d+/\d+  loss \d\.\d{3}.* img/s",
                         re.M)


@pytest.mark.slow
def test_a_tiny_sweep_shows_progress_report_html_tensorboard_and_mlflow(tmp_path):
    from headless_chromium import find_chromium, load_page
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    out, uri = tmp_path / "sweep", f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = dict(os.environ, PYTHONPATH=str(REPO), FUSION_SWEEP_PROGRESS_SECONDS="1")
    done = subprocess.run([sys.executable, "-m", "sweep.cli", "run", "--out", str(out), *TINY, "--mlflow", uri],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log = done.stdout
    assert done.returncode == 0, log[-3000:] + done.stderr[-3000:]
    assert "\x1b[" not in log  # a log gets plain lines, no terminal codes
    assert STATUS_LINE.search(log), log[-3000:]
    assert len(re.findall(r"^\[\d\d:\d\d\] done cnn:block\d_drop/b\d+/h16 seeds 0,1,2: test_accuracy", log, re.M)) == 4
    rows = pd.read_csv(out / "trials.csv")
    labels = [f"cnn:{cut}/b{width}/h16" for cut in ("block1_drop", "block2_drop") for width in (8, 16)]

    tensorboard = EventMultiplexer()  # what `tensorboard --logdir RESULTS` does
    tensorboard.AddRunsFromDirectory(str(out))
    tensorboard.Reload()
    runs = tensorboard.Runs()
    assert {f"trials/{t}" for t in rows["trial_id"]} <= set(runs)
    assert all("epoch/val_accuracy" in runs[f"trials/{t}"]["scalars"] for t in rows["trial_id"])
    assert not [r for r in runs if r.startswith("ray")]  # Ray's own TensorBoard logger stays off

    client = MlflowClient(tracking_uri=uri)
    recorded = client.search_runs([client.get_experiment_by_name("quick").experiment_id])
    assert sorted(r.data.tags["fusion_sweep.row_id"] for r in recorded) == sorted(rows["trial_id"])
    assert {r.info.run_name for r in recorded} == {f"{label} seed {seed}" for label in labels for seed in (0, 1, 2)}

    assert (out / "report.html").is_file()
    if find_chromium() is None and not os.environ.get("CI"):
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    page = load_page(out / "report.html", "document.body.dataset.reportReady === 'true' && "
                                          "typeof Bokeh !== 'undefined' && Bokeh.index.roots.length > 0",
                     probes={"images": "document.querySelectorAll('#explanation-browser .card img').length"})
    assert page.ready and page.errors == [] and page.requests == []
    assert all(label in page.text for label in labels)
    assert page.probes["images"] > 0  # synthetic data: the explained images and their SHAP overlays
