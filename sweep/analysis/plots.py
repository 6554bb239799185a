"""Accuracy-versus-size figures of a sweep: every trial (collapsed ones hollow), each configuration's mean and seed
range, the fitted scaling band, chance and the majority-class rate, the parents and the seed paper's points."""
from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure  # drawn headless, without pyplot's global state

from models.backbones import KERAS_BACKBONES
from sweep.analysis.inputs import stopped_by_scheduler
from sweep.analysis.tables import config_table
from sweep.configs.naming import is_seed_fusion
from sweep.configs.seed_paper import paper_points
from sweep.files import write_bytes_atomic

AXIS_WORDS = {"params": "parameters", "flops": "FLOPs per image (forward)", "latency_ms": "latency per image (ms)"}
STYLE = {"fusion": ("tab:blue", "o", "fusion"), "cnn": ("tab:orange", "s", "CNN parent"),
         "resnet50v2": ("tab:red", "D", "ResNet50V2 parent"),
         **{name: (color, "^", f"{name} parent")  # parents of sweeps over other backbones (run --backbones)
            for name, color in zip(KERAS_BACKBONES, ("tab:green", "tab:purple", "tab:brown", "tab:olive"))}}


def plot_accuracy_vs(trials, size: str, path: str | Path, *, result: dict | None = None,
                     baselines: dict | None = None, title: str = "", show_paper: bool = False) -> Path:
    """One figure of test accuracy (points) against `size` (log); rows a scheduler stopped (with test metrics only
    under --score-stopped) are grey crosses, outside the means. trials needs a boolean `collapsed` column;
    result is the analyze object of this axis (its curve is the band); baselines {"chance", "majority"} in points."""
    rows = trials[trials["test_accuracy"].notna() & trials[size].notna() & (trials[size] > 0)]
    stopped = stopped_by_scheduler(rows)
    rows, stopped = rows[~stopped], rows[stopped]
    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    ax = fig.add_subplot()
    _draw_band(ax, result)
    if len(stopped):  # --score-stopped: weights of an earlier epoch than the others'; no part of means or fits
        ax.scatter(stopped[size], 100 * stopped["test_accuracy"], s=22, marker="x", color="0.4", lw=1, zorder=3,
                   label="stopped by the scheduler (scored at its rung; left out)")
    for model, (color, marker, name) in STYLE.items():
        mine = rows[rows["model"] == model]
        _draw_trials(ax, mine, size, color, marker, name)
        _draw_means(ax, config_table(mine[~mine["collapsed"]]), size, color, marker)
    counted = rows[~rows["collapsed"]]
    seed = counted[[is_seed_fusion(r) for r in counted.to_dict("records")]]
    if len(seed):
        ax.scatter(seed[size].iloc[:1], [100 * seed["test_accuracy"].mean()], s=170, facecolors="none",
                   edgecolors="black", zorder=6, label="the seed's fusion")
    for key, style in (("chance", ":"), ("majority", "--")):
        if (baselines or {}).get(key) is not None:
            ax.axhline(baselines[key], color="0.45", ls=style, lw=1, label=f"{key} ({baselines[key]:.1f})")
    if show_paper and size == "params":
        for point in paper_points():
            ax.scatter(point["params"], 100 * point["test_accuracy"], marker="*", s=160, color="gold",
                       edgecolors="k", zorder=7, label="seed paper (256 px)" if point["model"] == "cnn" else None)
    return save_size_figure(fig, ax, path, size, ylabel="test accuracy (points)",
                            title=title or f"test accuracy vs {AXIS_WORDS.get(size, size)}")


def save_size_figure(fig, ax, path: Path, size: str, *, ylabel: str, title: str) -> Path:
    """Finish a figure of something against a size axis (log x, labels, grid, legend) and write it as a PNG."""
    ax.set_xscale("log")
    ax.set_xlabel(AXIS_WORDS.get(size, size) + " (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best", framealpha=0.7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return write_bytes_atomic(path, buffer.getvalue())


def _draw_band(ax, result: dict | None) -> None:
    curve = [p for p in (result or {}).get("curve") or [] if p.get("lo") is not None]
    if not curve:
        return
    x = [p["size"] for p in curve]
    ax.fill_between(x, [p["lo"] for p in curve], [p["hi"] for p in curve], color="tab:green", alpha=0.18, lw=0,
                    label=f"fitted curve, 90% band ({result['verdict']})")
    ax.plot(x, [p["estimate"] for p in curve], color="tab:green", lw=1.3)


def _draw_trials(ax, rows, size: str, color: str, marker: str, name: str) -> None:
    """Every trial as a small marker: filled when it counts, hollow when it collapsed to one class."""
    kept, collapsed = rows[~rows["collapsed"]], rows[rows["collapsed"]]
    if len(kept):
        ax.scatter(kept[size], 100 * kept["test_accuracy"], s=12, color=color, marker=marker, alpha=0.45, lw=0)
    if len(collapsed):
        ax.scatter(collapsed[size], 100 * collapsed["test_accuracy"], s=40, facecolors="none", edgecolors=color,
                   marker=marker, lw=1.2, zorder=4, label=f"{name}: collapsed trial (left out)")


def _draw_means(ax, configs, size: str, color: str, marker: str) -> None:
    """Each configuration's mean over its non-collapsed seeds, with a bar over their range."""
    if not len(configs):
        return
    mean = 100 * configs["test_accuracy_mean"]
    err = [mean - 100 * configs["test_accuracy_min"], 100 * configs["test_accuracy_max"] - mean]
    name = STYLE[configs["model"].iloc[0]][2]
    ax.errorbar(configs[size], mean, yerr=err, fmt=marker, color=color, ecolor="0.55", capsize=2, ms=6, zorder=5,
                label=f"{name} (mean, seed range)")
