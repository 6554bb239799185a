"""Figures and arrays of SHAP maps: one overlay, a grid of images x models, compressed map files."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure  # drawn headless, without pyplot's global state

from sweep.files import write_bytes_atomic


def _overlay(ax, image: np.ndarray, values: np.ndarray, title: str = "") -> None:
    limit = float(np.abs(values).max()) or 1.0
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.imshow(values, cmap="bwr", vmin=-limit, vmax=limit, alpha=0.55)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=7)


def _write_png(path: Path, fig: Figure) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    write_bytes_atomic(path, buf.getvalue())


def write_overlay(path: Path, image: np.ndarray, values: np.ndarray, title: str = "") -> None:
    """The map over its image: red pushes towards the explained class, blue away."""
    fig = Figure(figsize=(2.5, 2.5), dpi=100)
    _overlay(fig.add_subplot(), image, values, title)
    _write_png(path, fig)


def write_grid(path: Path, images: np.ndarray, image_ids: Sequence[str], maps: dict[str, dict[str, np.ndarray]],
               titles: dict[str, str]) -> None:
    """One figure: a row per image, its plain image first, then one overlay per model."""
    trials = list(maps)
    rows, cols = len(image_ids), len(trials) + 1
    fig = Figure(figsize=(1.8 * cols, 1.8 * rows), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, image_id in enumerate(image_ids):
        axes[i, 0].imshow(images[i], cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_axis_off()
        axes[i, 0].set_title(image_id, fontsize=6)
        for j, trial in enumerate(trials):
            _overlay(axes[i, j + 1], images[i], maps[trial][image_id], titles.get(trial, trial) if i == 0 else "")
    _write_png(path, fig)


def save_npz(path: Path, **arrays) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())
