"""Accuracy-versus-size figures of a sweep: per-configuration mean and seed spread, Pareto front, parents, paper points."""
from __future__ import annotations

from pathlib import Path

AXIS_WORDS = {"params": "parameters", "flops": "FLOPs per image (forward)", "latency_ms": "latency per image (ms)"}
PARENT_STYLE = {"cnn": ("tab:orange", "s", "CNN parent"), "resnet50v2": ("tab:red", "D", "ResNet50V2 parent")}


def paper_points() -> list[dict]:
    """The seed paper's three models (accuracy and params at 256 px), for plots of the Kaggle database."""
    try:
        from sweep.configs.seed_paper import PAPER_REPORTS
        accuracy = {m: PAPER_REPORTS[m]["accuracy"] for m in ("cnn", "resnet50v2", "fusion")}
    except (ImportError, KeyError):
        accuracy = {"cnn": 0.94, "resnet50v2": 0.99, "fusion": 0.86}
    params = {"cnn": 69_244_610, "resnet50v2": 292_006_402, "fusion": 10_437_570}
    return [{"model": m, "params": params[m], "test_accuracy": accuracy[m]} for m in ("cnn", "resnet50v2", "fusion")]


def plot_accuracy_vs(configs, pareto, size: str, path: str | Path, *, quality: str = "test_accuracy",
                     title: str = "", show_paper: bool = False) -> Path:
    """One figure: x = size (log), y = mean quality with min-max seed spread; Pareto front; parents labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sweep.tune.results import write_bytes_atomic

    mean, lo, hi = f"{quality}_mean", f"{quality}_min", f"{quality}_max"
    table = configs[configs[size].notna() & (configs[size] > 0)]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    fusion = table[table["model"] == "fusion"]
    if len(fusion):
        ax.errorbar(fusion[size], fusion[mean], yerr=[fusion[mean] - fusion[lo], fusion[hi] - fusion[mean]],
                    fmt="o", color="tab:blue", ecolor="0.6", capsize=2, ms=5, label="fusion configs (mean, seed range)")
        seed = fusion[(fusion["cnn_cut"] == "block3_drop") & (fusion["resnet_cut"] == "conv3_block4_2_relu")
                      & (fusion["branch_width"] == 2048) & (fusion["head_width"] == 2048)]
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
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())
