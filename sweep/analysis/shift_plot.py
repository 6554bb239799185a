"""One figure per size axis: each configuration's in-source accuracy and its accuracy on every external and
counterfactual set against size, so a drop under shift is seen beside the curve it would otherwise hide behind."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # drawn headless, without pyplot's global state

from sweep.analysis.plots import AXIS_WORDS, save_size_figure
from sweep.analysis.shift import collapsed
from sweep.analysis.tables import by_configuration

COLOURS = ("tab:blue", "tab:red", "tab:purple", "tab:green", "tab:brown", "tab:pink", "tab:olive")


def split_points(trials, split_columns: dict[str, str], size: str, predictions=None) -> dict[str, np.ndarray]:
    """{split: (C, 4) rows of size, mean, min, max accuracy over the counted seeds of each configuration}."""
    flags = collapsed(trials, predictions)
    out = {}
    for split, column in split_columns.items():
        rows = []
        for group in by_configuration(trials[trials["test_accuracy"].notna()]):
            used = group[group[column].notna() & ~flags.loc[group.index]] if column in group else group.iloc[:0]
            if len(used) and used[size].notna().all() and (used[size] > 0).all():
                values = used[column].astype(float)
                rows.append((float(used[size].mean()), values.mean(), values.min(), values.max()))
        out[split] = np.asarray(sorted(rows), float).reshape(-1, 4)
    return out


def plot_shift(trials, size: str, path: str | Path, *, externals: list[str], counterfactuals: list[str],
               predictions=None, title: str = "") -> Path:
    """in-source (circles), external (triangles) and counterfactual (squares) accuracy against size; each
    configuration's points are joined by a thin vertical line, so every gap is visible."""
    columns = {"in-source test": "test_accuracy"}
    columns.update({f"external: {n}": f"ext_{n}_accuracy" for n in externals})
    columns.update({f"counterfactual: {n}": f"cf_{n}_accuracy" for n in counterfactuals})
    points = split_points(trials, columns, size, predictions)
    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    ax = fig.add_subplot()
    base = points["in-source test"]
    for index, (name, pts) in enumerate(points.items()):
        if not len(pts):
            continue
        marker = "o" if index == 0 else "^" if name.startswith("external") else "s"
        colour = COLOURS[index % len(COLOURS)]
        if index and len(base):
            for x, y, *_ in pts:
                match = base[np.isclose(base[:, 0], x)]
                if len(match):
                    ax.plot([x, x], [match[0, 1], y], color=colour, alpha=0.35, lw=1)
        ax.errorbar(pts[:, 0], pts[:, 1], yerr=[pts[:, 1] - pts[:, 2], pts[:, 3] - pts[:, 1]], fmt=marker,
                    color=colour, ecolor=colour, alpha=0.9, capsize=2, ms=6, label=name)
    ax.set_ylim(-0.02, 1.02)
    return save_size_figure(fig, ax, path, size, ylabel="accuracy (configuration mean, seed range)",
                            title=title or f"accuracy in-source and under shift vs {AXIS_WORDS.get(size, size)}")
