"""Write one run's result files atomically: metrics.json, classification_report.txt, history.csv, confusion_matrix.png."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure  # drawn headless, without pyplot's global state

from sweep.files import write_bytes_atomic, write_json_atomic, write_text_atomic

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")
OUTPUT_FILES = ("metrics.json", "classification_report.txt", "history.csv", "confusion_matrix.png")


def history_csv(history: Sequence[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in HISTORY_COLUMNS})
    return buf.getvalue()


def confusion_matrix_png(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str = "") -> bytes:
    """A labelled confusion matrix (rows true, columns predicted) as PNG bytes, drawn headless."""
    k = len(classes)
    fig = Figure(figsize=(1.6 + 1.1 * k, 1.2 + 1.0 * k), dpi=120)
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    peak = max((max(row) for row in matrix), default=0) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    ax.set_xticks(range(k), classes, rotation=30, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_run_outputs(out_dir: str | Path, metrics: dict, report: str | None, history: Sequence[dict],
                      title: str = "") -> None:
    """All result files of a run (or of an evaluation) into `out_dir`; metrics.json last, as the completion mark."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if history:
        write_text_atomic(out_dir / "history.csv", history_csv(history))
    if report is not None:
        write_text_atomic(out_dir / "classification_report.txt", report)
    if metrics.get("confusion_matrix"):
        write_bytes_atomic(out_dir / "confusion_matrix.png",
                           confusion_matrix_png(metrics["confusion_matrix"], metrics["classes"], title))
    write_json_atomic(out_dir / "metrics.json", metrics)
