"""The suite cannot hang: every test has pytest-timeout's bound, slow and cluster tests a longer one."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


class Item:
    def __init__(self, *marks):
        self.marks = list(marks)

    def get_closest_marker(self, name):
        return next((m for m in self.marks if m.name == name), None)

    def add_marker(self, mark):
        self.marks.append(mark.mark)


def test_every_test_has_a_bound_and_slow_or_cluster_tests_a_longer_one(request):
    conftest = next(p for p in request.config.pluginmanager.get_plugins()
                    if getattr(p, "__file__", None) == str(REPO_ROOT / "tests" / "conftest.py"))
    slow_s, modify = conftest.SLOW_TIMEOUT_S, conftest.pytest_collection_modifyitems
    default = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["timeout"]
    assert 0 < default < slow_s
    fast, slow, cluster, own = (Item(), Item(pytest.mark.slow.mark), Item(pytest.mark.cluster.mark),
                                Item(pytest.mark.slow.mark, pytest.mark.timeout(60).mark))
    modify(None, [fast, slow, cluster, own])
    assert fast.get_closest_marker("timeout") is None  # the default from pyproject applies
    assert slow.get_closest_marker("timeout").args == cluster.get_closest_marker("timeout").args == (slow_s,)
    assert own.get_closest_marker("timeout").args == (60,)  # a test's own bound is kept
