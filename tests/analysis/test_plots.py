"""plots.plot_accuracy_vs: what the figure draws, read from its matplotlib artists (not from pixels)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from sweep.analysis import plots


def _rows() -> pd.DataFrame:
    base = {"model": "fusion", "resnet_cut": None, "branch_width": 16, "head_width": 2048, "status": "TERMINATED"}
    rows = [dict(base, cnn_cut=cut, seed=seed, params=params, test_accuracy=acc, collapsed=collapsed)
            for cut, params, accs in (("block1_drop", 4e4, (0.61, 0.64, 0.50)), ("block2_drop", 9e4, (0.70, 0.72, 0.69)))
            for seed, (acc, collapsed) in enumerate(zip(accs, (False, False, cut == "block1_drop")))]
    rows.append({"model": "cnn", "cnn_cut": None, "resnet_cut": None, "branch_width": None, "head_width": 2048,
                 "status": "TERMINATED", "seed": 0, "params": 3.2e6, "test_accuracy": 0.5, "collapsed": True})
    return pd.DataFrame(rows)


def _drawn_axes(monkeypatch, tmp_path, **kwargs):
    drawn = {}

    def keep(fig, ax, path, size, *, ylabel, title):
        drawn["ax"] = ax
        return path

    monkeypatch.setattr(plots, "save_size_figure", keep)
    plots.plot_accuracy_vs(_rows(), "params", tmp_path / "plot.png", **kwargs)
    return drawn["ax"]


def test_collapsed_trials_are_hollow_and_apart_and_the_baselines_are_drawn(monkeypatch, tmp_path):
    ax = _drawn_axes(monkeypatch, tmp_path, baselines={"chance": 50.0, "majority": 52.5})
    by_label = {c.get_label(): c for c in ax.collections}
    for label, points in (("fusion: collapsed trial (left out)", [(4e4, 50.0)]),
                          ("CNN parent: collapsed trial (left out)", [(3.2e6, 50.0)])):
        hollow = by_label[label]
        assert len(hollow.get_facecolor()) == 0  # facecolors="none": an outline only
        np.testing.assert_allclose(hollow.get_offsets(), points)
    filled = [c for c in ax.collections if not c.get_label().endswith("(left out)") and len(c.get_facecolor())]
    drawn_points = {tuple(p) for c in filled for p in np.asarray(c.get_offsets())}
    assert (4e4, 50.0) not in drawn_points  # the collapsed seed is in no filled marker (nor in a mean)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["chance (50.0)"].get_ydata()[0] == 50.0 and lines["chance (50.0)"].get_linestyle() == ":"
    assert lines["majority (52.5)"].get_ydata()[0] == 52.5 and lines["majority (52.5)"].get_linestyle() == "--"
