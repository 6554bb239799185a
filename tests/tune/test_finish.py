"""After the trials (sweep.tune.finish), without Ray: a failing step is one line and exit 1 with the tables kept, the
report is built once, and the manifest records the sweep as the user gave it."""
from __future__ import annotations

import json
import types

import pandas as pd
import pytest

from sweep.configs.presets import get_preset
from sweep.tune import finish

CONFIG = {"model": "fusion", "cnn_cut": "block2_drop", "resnet_cut": None, "branch_width": 16, "head_width": 16}


def _trial(index: int, status: str, result: dict, error: str | None = None):
    """What finish reads of a Ray Trial (and, iterated as the grid's results, of a Ray Result). One seed: `index`."""
    return types.SimpleNamespace(trial_id=f"fa17e_{index:05d}", status=status, last_result=result, num_failures=0,
                                 config={"trial": dict(CONFIG, seeds=[index])}, checkpoint=None,
                                 get_error=lambda: error, metrics=dict(result, trial_id=f"fa17e_{index:05d}"),
                                 path=f"run_trial_fa17e_{index:05d}_0")


class _Grid(list):
    """A ResultGrid: its results when iterated, Ray's Trials on its experiment analysis."""

    def __init__(self, trials):
        super().__init__(trials)
        self._experiment_analysis = types.SimpleNamespace(trials=list(trials))


def _grid(*trials):
    return _Grid(trials)


def _seed(index: int, **metrics) -> dict:
    return {"seeds": {str(index): metrics}}


def _finished(index: int, accuracy: float):
    return _trial(index, "TERMINATED", {"final": True, "epoch": 2, **_seed(
        index, train_status="completed", epochs_run=2, test_accuracy=accuracy, val_accuracy=accuracy,
        params=1000 + index, flops=2e6, latency_ms=1.0, weights_epoch=2, best_epoch=2)})


def _finish(tmp_path, grid, sweep=None, explain=False):
    sweep = sweep or get_preset("quick")
    lines: list[str] = []
    code = finish.finish_sweep(grid, sweep, tmp_path, facts={"data_fingerprint": "f/p", "command": ["fusion-sweep",
                               "run"], "cluster_resources": {}, "extra": {"name": sweep.name}}, explain=explain,
                               start=0.0, say=lines.append, prune=None)
    return code, lines


def test_a_failing_explanation_step_is_one_line_and_exit_1_and_the_report_is_built_once(tmp_path, monkeypatch):
    def broken(out, sweep, say):
        raise RuntimeError("SHAP ran out of\nmemory")

    built = []
    monkeypatch.setattr(finish, "_explain", broken)
    monkeypatch.setattr(finish, "_report", lambda out: built.append(out))
    monkeypatch.setattr(finish, "_print_summary", lambda out, wall: None)
    code, lines = _finish(tmp_path, _grid(_finished(0, 0.8), _finished(1, 0.7)), explain=True)
    assert code == 1
    assert [line for line in lines if line.startswith("error:")] == \
        ["error: explanations failed: RuntimeError: SHAP ran out of memory"]
    assert built == [tmp_path]  # once, after the explanations
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 2  # the tables stay
    assert json.loads((tmp_path / "manifest.json").read_text())["failed_steps"] == ["explanations"]


def test_a_failing_report_is_one_line_and_exit_1(tmp_path, monkeypatch):
    def broken(out):
        raise ValueError("cannot plot")

    monkeypatch.setattr(finish, "_report", broken)
    code, lines = _finish(tmp_path, _grid(_finished(0, 0.8)))
    assert code == 1 and "error: report failed: ValueError: cannot plot" in lines
    assert (tmp_path / "trials.parquet").is_file()


def test_rows_without_test_metrics_still_get_a_report_that_says_so(tmp_path):
    stopped = _trial(0, "TERMINATED", {"epoch": 1, "final": False, **_seed(
        0, epoch=1, selected_val_accuracy=0.6, selected_epoch=1, train_status="training")})
    code, lines = _finish(tmp_path, _grid(stopped))
    assert code == 0 and not [line for line in lines if line.startswith("error:")]
    report = (tmp_path / "report.md").read_text()
    assert report.count("**No row has test metrics** (1 stopped by scheduler)") == 1
    assert (tmp_path / "report.html").is_file()


def test_a_failed_trial_exits_1_and_an_interrupted_sweep_says_how_to_continue(tmp_path, monkeypatch):
    monkeypatch.setattr(finish, "_print_summary", lambda out, wall: None)
    failed = _trial(1, "ERROR", {}, error="Traceback ...\nValueError: bad trial")
    running = _trial(2, "RUNNING", {"epoch": 1})
    code, lines = _finish(tmp_path, _grid(_finished(0, 0.8), failed, running))
    assert code == 1
    table = pd.read_csv(tmp_path / "trials.csv")
    assert list(table["trial_id"]) == ["fa17e_00000-s0", "fa17e_00001-s1"]
    assert table.set_index("trial_id").loc["fa17e_00001-s1", "message"] == "ValueError: bad trial"
    assert any("failed after 0 restart(s): ValueError: bad trial" in line for line in lines)
    assert any("1 trial(s) did not end" in line and "--resume" in line for line in lines)


def test_the_manifest_and_report_record_the_data_folder_as_given_and_no_machine_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(finish, "_print_summary", lambda out, wall: None)
    sweep = get_preset("cpu-real")
    sweep = sweep.replace(train=sweep.train.replace(data=sweep.train.data.replace(
        data_dir="../data/cxr", cache_dir=str(tmp_path / "cache"))))
    _finish(tmp_path, _grid(_finished(0, 0.8)), sweep=sweep)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    data = manifest["sweep_config"]["train"]["data"]
    assert data["data_dir"] == "../data/cxr" and data["cache_dir"] is None
    for name in ("manifest.json", "report.md"):
        assert str(tmp_path) not in (tmp_path / name).read_text(), name
    assert "`../data/cxr`" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("storage, expected", [(None, "ray/sweep"), ("s3://bucket/runs/", "s3://bucket/runs/sweep")])
def test_the_ray_experiment_is_recorded_where_the_user_put_it(storage, expected):
    from sweep.tune.driver import recorded_experiment

    assert recorded_experiment(storage) == expected


def test_the_last_line_names_every_output_the_run_wrote_and_only_those(tmp_path):
    from sweep.tune.finish import written_outputs

    for name in ("trials.csv", "effects.json", "report.html", "manifest.json"):
        (tmp_path / name).write_text("x")
    (tmp_path / "plots").mkdir()
    assert written_outputs(tmp_path) == ["report.html", "trials.csv", "effects.json", "plots/", "manifest.json"]
