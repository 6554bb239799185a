"""Figures and arrays of SHAP maps on SYNTHETIC images only: one overlay, a grid of images x models (each with the
ground-truth lesion outline and marker box drawn on), compressed map files. Real X-rays never reach this module."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure  # drawn headless, without pyplot's global state
from matplotlib.patches import Rectangle

from sweep.files import write_bytes_atomic

LESION_COLOUR, MARKER_COLOUR = "lime", "yellow"


def _ground_truth(ax, lesion: np.ndarray | None, box) -> None:
    """The lesion mask's outline and the marker's box [y0, x0, y1, x1) (end-exclusive; -1: none)."""
    if lesion is not None and np.any(lesion) and not np.all(lesion):
        ax.contour(np.asarray(lesion, float), levels=[0.5], colors=LESION_COLOUR, linewidths=0.7)
    if box is not None and min(int(v) for v in box) >= 0:
        y0, x0, y1, x1 = (int(v) for v in box)
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=MARKER_COLOUR, lw=0.9))


def _overlay(ax, image: np.ndarray, values: np.ndarray, title: str = "", lesion=None, box=None) -> None:
    finite = np.nan_to_num(np.asarray(values, float))
    limit = float(np.abs(finite).max()) or 1.0
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.imshow(finite, cmap="bwr", vmin=-limit, vmax=limit, alpha=0.55)
    _ground_truth(ax, lesion, box)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=7)


def _write_png(path: Path, fig: Figure) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    write_bytes_atomic(path, buf.getvalue())


def write_overlay(path: Path, image: np.ndarray, values: np.ndarray, title: str = "", *, lesion=None,
                  box=None) -> None:
    """The map over its image: red pushes towards the explained class, blue away; lesion outline, marker box."""
    fig = Figure(figsize=(2.5, 2.5), dpi=100)
    _overlay(fig.add_subplot(), image, values, title, lesion, box)
    _write_png(path, fig)


def write_grid(path: Path, images: np.ndarray, image_ids: Sequence[str], maps: dict[str, dict[str, np.ndarray]],
               titles: dict[str, str], *, lesions=None, boxes=None) -> None:
    """One figure: a row per image (its plain image with the ground truth first), then one overlay per model;
    columns are titled by `titles` (configuration and seed)."""
    trials = list(maps)
    rows, cols = len(image_ids), len(trials) + 1
    fig = Figure(figsize=(1.8 * cols, 1.8 * rows), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, image_id in enumerate(image_ids):
        lesion = None if lesions is None else lesions[i]
        box = None if boxes is None else boxes[i]
        axes[i, 0].imshow(images[i], cmap="gray", vmin=0, vmax=1)
        _ground_truth(axes[i, 0], lesion, box)
        axes[i, 0].set_axis_off()
        axes[i, 0].set_title(image_id, fontsize=6)
        for j, trial in enumerate(trials):
            _overlay(axes[i, j + 1], images[i], maps[trial][image_id], titles.get(trial, trial) if i == 0 else "",
                     lesion, box)
    _write_png(path, fig)


def save_npz(path: Path, **arrays) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())
