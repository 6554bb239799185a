"""Write one run's result files atomically: metrics.json, classification_report.txt, history.csv, confusion_matrix.png."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Sequence

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")
OUTPUT_FILES = ("metrics.json", "classification_report.txt", "history.csv", "confusion_matrix.png")


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over `path` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):
        return _json_safe(value.item())
    return value


def write_json_atomic(path: str | Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(_json_safe(data), indent=2) + "\n")


def history_csv(history: Sequence[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in HISTORY_COLUMNS})
    return buf.getvalue()


def confusion_matrix_png(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str = "") -> bytes:
    """A labelled confusion matrix (rows true, columns predicted) as PNG bytes, drawn headless."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

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
