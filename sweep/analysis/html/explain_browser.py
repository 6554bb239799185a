"""The explanation browser's data: per explained model and image, the scores; for synthetic data also the image,
its SHAP overlay and the ground-truth lesion outline and marker box. Real X-rays: scores only, never pixels."""
from __future__ import annotations

import base64
import io
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

SCORE_COLUMNS = (  # summary.csv column -> title, digits
    ("prob", "probability of the prediction", 3), ("border_share", "border share", 3),
    ("marker_share", "marker share", 3), ("lesion_share", "lesion share", 3), ("lung_share", "lung share", 3),
    ("pointing_hit", "pointing hit", 0), ("nan_map", "NaN map", None), ("evals", "evaluations", 0),
)
MODEL_SHARES = ("border_share", "marker_share", "lesion_share", "lung_share")


def safe_name(image_id: str) -> str:
    """The file name explain gives an image id (the same rule as sweep.explain)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(image_id))


def browser_data(summary: pd.DataFrame, names: dict[str, str], explanations_dir: Path, classes: list[str],
                 synthetic: bool) -> dict:
    """JSON for report.js's explanation browser. `names` maps trial_id -> 'configuration · seed N'."""
    columns = [{"key": key, "title": title, "type": "num" if digits is not None else "text", "digits": digits}
               for key, title, digits in SCORE_COLUMNS if key in summary and summary[key].notna().any()]
    trial_ids = list(dict.fromkeys(summary["trial_id"].astype(str)))
    models = [{"key": t, "name": names.get(t, t)} for t in trial_ids]
    images, maps = [], {t: {} for t in trial_ids}
    for image_id, rows in summary.groupby("image_id", sort=False):
        image = {"id": str(image_id), "label": class_name(rows["label"].iloc[0], classes)}
        pixels = synthetic_image(explanations_dir, str(image_id)) if synthetic else None
        if pixels is not None:
            image.update(src=png_data_uri(pixels["image"]), size=list(pixels["image"].shape),
                         lesion_path=outline_path(pixels.get("lesion_mask")), marker_box=marker_box(pixels))
        images.append(image)
        for _, row in rows.iterrows():
            entry = {c["key"]: _json_value(row[c["key"]]) for c in columns}
            entry["pred"] = class_name(row.get("pred"), classes)
            values = shap_values(explanations_dir, str(row["trial_id"]), str(image_id)) if pixels is not None else None
            if values is not None:
                entry["overlay"] = png_data_uri(shap_rgba(values))
            maps[str(row["trial_id"])][str(image_id)] = entry
    return {"synthetic": synthetic, "models": models, "images": images, "maps": maps, "score_columns": columns}


def class_name(value, classes: list[str]) -> str:
    """summary.csv holds class indices (older runs) or names."""
    try:
        index = int(float(value))
    except (TypeError, ValueError):
        return str(value)
    return classes[index] if 0 <= index < len(classes) else str(index)


def synthetic_image(explanations_dir: Path, image_id: str) -> dict | None:
    """explanations/images/<id>.npz (synthetic data only): image uint8 (H,W), lesion_mask bool, marker_box [y0,x0,y1,x1)."""
    path = explanations_dir / "images" / f"{safe_name(image_id)}.npz"
    if not path.is_file():
        return None
    with np.load(path) as npz:
        return {k: np.asarray(npz[k]) for k in npz.files}


def shap_values(explanations_dir: Path, trial_id: str, image_id: str) -> np.ndarray | None:
    path = explanations_dir / trial_id / f"{safe_name(image_id)}.npz"
    if not path.is_file():
        return None
    with np.load(path) as npz:
        return np.asarray(npz["values"], np.float32)


def shap_rgba(values: np.ndarray) -> np.ndarray:
    """Red where a pixel pushes towards the explained class, blue away; opacity grows with |SHAP| (per-map scale)."""
    values = np.nan_to_num(np.asarray(values, np.float32))
    limit = float(np.abs(values).max()) or 1.0
    t = np.clip(values / limit, -1.0, 1.0)
    rgba = np.zeros((*t.shape, 4), np.uint8)
    rgba[..., 0] = np.where(t > 0, 220, 30)
    rgba[..., 1] = 40
    rgba[..., 2] = np.where(t > 0, 30, 220)
    rgba[..., 3] = np.round(np.abs(t) * 215).astype(np.uint8)
    return rgba


def png_data_uri(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def outline_path(mask) -> str | None:
    """An SVG path along the pixel edges between a mask and its outside (runs merged), or None for no mask."""
    if mask is None or not np.any(mask):
        return None
    mask = np.pad(np.asarray(mask, bool), 1)
    parts = []
    horizontal = mask[1:, 1:-1] != mask[:-1, 1:-1]  # edge above pixel row y (y = 0..H)
    for y, row in enumerate(horizontal):
        parts += [f"M{start} {y}h{length}" for start, length in _runs(row)]
    vertical = mask[1:-1, 1:] != mask[1:-1, :-1]  # edge left of pixel column x (x = 0..W)
    for x, column in enumerate(vertical.T):
        parts += [f"M{x} {start}v{length}" for start, length in _runs(column)]
    return "".join(parts)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, flag in enumerate(list(flags) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def marker_box(pixels: dict) -> list[int] | None:
    box = pixels.get("marker_box")
    if box is None or len(box) != 4 or int(box[0]) < 0:
        return None
    return [int(v) for v in box]


def _json_value(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def model_table(models: pd.DataFrame | None, summary: pd.DataFrame, names: dict[str, str]) -> tuple[list, list]:
    """(columns, rows) of the per-model explanation table: models.csv with intervals when it exists, else the
    per-model means of summary.csv."""
    if models is not None and len(models):
        shares = [s for s in MODEL_SHARES if s in models]
        columns = ["model", "images", *[s.replace("_", " ") + " [90% interval]" for s in shares], "flag"]
        rows = [[names.get(str(r["trial_id"]), str(r["trial_id"])), _count(r.get("n_images"))]
                + [_interval(r, s) for s in shares] + [_json_value(r.get("flag")) or ""] for _, r in models.iterrows()]
        return columns, rows
    shares = [s for s in MODEL_SHARES if s in summary and summary[s].notna().any()]
    means = summary.groupby("trial_id", sort=False)[shares].mean() if shares else None
    counts = summary.groupby("trial_id", sort=False).size()
    columns = ["model", "images", *[s.replace("_", " ") + " (mean)" for s in shares]]
    rows = [[names.get(str(t), str(t)), int(counts[t])] + ([f"{means.loc[t, s]:.3f}" for s in shares]
                                                           if means is not None else []) for t in counts.index]
    return columns, rows


def _count(value) -> str:
    number = _json_value(value)
    return f"{number:.0f}" if isinstance(number, float) else "–"


def _interval(row, share: str) -> str:
    value, lo, hi = row.get(share), row.get(f"{share}_lo"), row.get(f"{share}_hi")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return f"{value:.3f}"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"
