"""Accuracy-versus-size figures of a sweep: per-configuration mean and seed spread, Pareto front, parents, paper points."""
from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure  # drawn headless, without pyplot's global state

from sweep.configs.naming import is_seed_fusion
from sweep.configs.seed_paper import paper_points
from sweep.files import write_bytes_atomic

AXIS_WORDS = {"params": "parameters", "flops": "FLOPs per image (forward)", "latency_ms": "latency per image (ms)"}
PARENT_STYLE = {"cnn": ("tab:orange", "s", "CNN parent"), "resnet50v2": ("tab:red", "D", "ResNet50V2 parent")}


def plot_accuracy_vs(configs, pareto, size: str, path: str | Path, *, quality: str = "test_accuracy",
                     title: str = "", show_paper: bool = False) -> Path:
    """One figure: x = size (log), y = mean quality with min-max seed spread; Pareto front; parents labelled."""
    mean, lo, hi = f"{quality}_mean", f"{quality}_min", f"{quality}_max"
    table = configs[configs[size].notna() & (configs[size] > 0)]
    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    ax = fig.add_subplot()
    fusion = table[table["model"] == "fusion"]
    if len(fusion):
        ax.errorbar(fusion[size], fusion[mean], yerr=[fusion[mean] - fusion[lo], fusion[hi] - fusion[mean]],
                    fmt="o", color="tab:blue", ecolor="0.6", capsize=2, ms=5, label="fusion configs (mean, seed range)")
        seed = fusion[fusion.apply(is_seed_fusion, axis=1)]
        if len(seed):
            ax.scatter(seed[size], seed[mean], s=140, facecolors="none", edgecolors="black", zorder=5,
                       label="the seed's fusion")
    for model, (color, marker, name) in PARENT_STYLE.items():
        parent = table[table["model"] == model]
        if len(parent):
            ax.errorbar(parent[size], parent[mean], yerr=[parent[mean] - parent[lo], parent[hi] - parent[mean]],
                        fmt=marker, color=color, ms=8, capsize=2, label=name)
            for _, row in parent.iterrows():
                ax.annotate(name, (row[size], row[mean]), textcoords="offset points", xytext=(6, -12), fontsize=8)
    front = pareto[pareto[size].notna() & (pareto[size] > 0)].sort_values(size) if size in pareto else pareto.iloc[:0]
    if len(front):
        ax.step(front[size], front[mean], where="post", color="tab:green", lw=1.2, alpha=0.8, label="Pareto front (params)")
    if show_paper and size == "params":
        for point in paper_points():
            ax.scatter(point["params"], point["test_accuracy"], marker="*", s=160, color="gold", edgecolors="k",
                       zorder=6, label="seed paper (256 px)" if point["model"] == "cnn" else None)
            ax.annotate(f"paper {point['model']}", (point["params"], point["test_accuracy"]),
                        textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(AXIS_WORDS.get(size, size) + " (log scale)")
    ax.set_ylabel(quality.replace("_", " "))
    ax.set_title(title or f"{quality.replace('_', ' ')} vs {AXIS_WORDS.get(size, size)}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best", framealpha=0.7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return write_bytes_atomic(path, buffer.getvalue())
