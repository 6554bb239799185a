"""The manifest's git state a reader trusts: a clean checkout running into its own tracked results folder says clean;
an edited source file says dirty and names the file. Each test makes its own small git repository."""
from __future__ import annotations

import json
import subprocess
import types

import pytest

from sweep import runtime
from sweep.commands import run as run_command
from sweep.tune.results import manifest


def _git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path):
    """A committed checkout: code in sweep/, a committed results folder results/quick with a manifest."""
    root = tmp_path / "repo"
    (root / "sweep").mkdir(parents=True)
    (root / "sweep" / "model.py").write_text("WIDTH = 8\n")
    (root / "results" / "quick").mkdir(parents=True)
    (root / "results" / "quick" / "manifest.json").write_text("{}\n")
    (root / "results" / "quick" / "trials.csv").write_text("trial_id\nold\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    return root


def test_a_run_rewriting_its_own_tracked_results_folder_leaves_the_checkout_clean(checkout):
    (checkout / "results" / "quick" / "trials.csv").write_text("trial_id\nnew\n")
    (checkout / "results" / "quick" / "report.md").write_text("# new\n")
    state = runtime.git_state(exclude=checkout / "results" / "quick", root=checkout)
    assert state["dirty"] is False and state["changed"] == []
    assert runtime.git_commit(state) == state["commit"]
    # without the exclusion the same tree is dirty: the exclusion, not luck, keeps it clean
    assert runtime.git_state(root=checkout)["changed"] == ["results/quick/trials.csv"]


def test_an_edited_or_new_source_file_makes_it_dirty_and_is_named(checkout):
    (checkout / "sweep" / "model.py").write_text("WIDTH = 16\n")
    (checkout / "sweep" / "extra.py").write_text("")  # untracked code counts too
    (checkout / "notes.txt").write_text("")  # an untracked file outside the code does not
    state = runtime.git_state(exclude=checkout / "results" / "quick", root=checkout)
    assert state["dirty"] is True and state["changed"] == ["sweep/extra.py", "sweep/model.py"]
    assert runtime.git_commit(state).endswith("+dirty")
    recorded = manifest({"name": "x"}, data_fingerprint=None, git=state)
    assert recorded["git_commit"] == state["commit"] + "+dirty"
    assert recorded["git_changed"] == ["sweep/extra.py", "sweep/model.py"]


def test_outside_git_there_is_no_state(tmp_path):
    assert runtime.git_state(root=tmp_path) is None


def test_a_run_into_its_own_committed_results_folder_hands_the_driver_a_clean_state(checkout, monkeypatch):
    """`run --out results/quick` removes the previous run's tracked files before the sweep; the committed folder
    being replaced does not make the run look dirty."""
    monkeypatch.setattr(runtime, "REPO_ROOT", checkout)
    monkeypatch.setattr(run_command, "git_state", lambda exclude: runtime.git_state(exclude, root=checkout))
    handed = {}
    fake_driver = types.SimpleNamespace(run_sweep=lambda *a, **kw: handed.update(kw) or 0)
    monkeypatch.setitem(__import__("sys").modules, "sweep.tune.driver", fake_driver)
    from sweep.cli import main

    assert main(["run", "--out", str(checkout / "results" / "quick"), "--no-explain"]) == 0
    assert not (checkout / "results" / "quick" / "manifest.json").exists()  # the old run's files were removed
    assert handed["git"]["dirty"] is False
    json.dumps(handed["git"])  # what the manifest records is plain JSON
