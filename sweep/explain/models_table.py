"""explanations/models.csv: one row per explained model, each share with a 90% interval over patients, the value a
reference map would have, and the 'possible shortcut' flag.

A flag needs the interval to clear an absolute reference, never only the other models: a model is flagged on
  - border_share when the interval's low end is above a uniform map's share of the border band (0.36);
  - marker_share when its low end is above the same model's share of the same boxes on copies of the images with
    the marker removed (synthetic data), or, without copies, above the boxes' area (a uniform map's share);
  - lung_share when its high end is below the lung fields' area: less of the map inside the lungs than a uniform
    map would put there.
Maps that are NaN or all zero (a collapsed model's, typically) are counted, reported and left out of the shares.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from sweep.explain import scores

SHARES = ("border_share", "marker_share", "lesion_share", "lung_share")
SCORES = SHARES + ("pointing_hit",)


def _mean(rows: Sequence[dict], key: str) -> float:
    values = [float(r[key]) for r in rows if r.get(key) not in (None, "") and math.isfinite(float(r[key]))]
    return float(np.mean(values)) if values else float("nan")


def references(rows: Sequence[dict]) -> dict[str, tuple[float, str]]:
    """share -> (reference value, what it is) for the images a model explained."""
    out = {"border_share": (scores.UNIFORM_BORDER_SHARE, "uniform map")}
    copies = _mean([r for r in rows if _finite(r.get("marker_share"))], "marker_copy_share")
    if math.isfinite(copies):
        out["marker_share"] = (copies, "marker-removed copies")
    else:
        out["marker_share"] = (_mean(rows, "marker_uniform"), "uniform map")
    out["lung_share"] = (_mean(rows, "lung_uniform"), "uniform map")
    out["lesion_share"] = (_mean(rows, "lesion_uniform"), "uniform map")
    return out


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def flag_reasons(row: dict) -> list[str]:
    """The shares on which a models.csv row clears its reference (see the module docstring)."""
    reasons = []
    for share in ("border_share", "marker_share"):
        lo, ref = row.get(f"{share}_lo"), row.get(f"{share}_reference")
        if _finite(lo) and _finite(ref) and lo > ref:
            reasons.append(share)
    hi, ref = row.get("lung_share_hi"), row.get("lung_share_reference")
    if _finite(hi) and _finite(ref) and hi < ref:
        reasons.append("lung_share")
    return reasons


def model_row(trial_id: str, rows: Sequence[dict], *, config: str = "", seed=None, patient_of=None) -> dict:
    """The models.csv row of one explained model from its summary rows (one per image); patient_of maps image_id
    to patient (the test split's groups), so that intervals resample patients (None: each image its own)."""
    usable = [r for r in rows if not r.get("nan_map")]
    out = {"trial_id": trial_id, "config": config, "seed": seed, "n_images": len(rows),
           "n_nan": len(rows) - len(usable),
           "accuracy": float(np.mean([int(r["label"]) == int(r["pred"]) for r in rows])) if rows else float("nan")}
    refs = references(usable)
    for key in SCORES:
        groups = None if patient_of is None else [patient_of.get(str(r.get("image_id")), str(r.get("image_id")))
                                                  for r in usable]
        mean, lo, hi, n = scores.bootstrap_mean([float(r[key]) if _finite(r.get(key)) else float("nan")
                                                 for r in usable], groups=groups)
        out.update({key: mean, f"{key}_lo": lo, f"{key}_hi": hi, f"{key}_n": n})
        if key in refs:
            out[f"{key}_reference"], out[f"{key}_reference_is"] = refs[key]
    for key in ("seconds", "evals", "overhead_ratio"):
        out[key] = _mean(rows, key)
    out["flag"] = ", ".join(flag_reasons(out))
    return out


def columns(rows: Sequence[dict]) -> list[str]:
    """models.csv's columns: identity, counts, then each share with its interval and reference, then the flag."""
    cols = ["trial_id", "config", "seed", "n_images", "n_nan", "accuracy"]
    for key in SCORES:
        cols += [key, f"{key}_lo", f"{key}_hi", f"{key}_n"]
        if any(f"{key}_reference" in r for r in rows):
            cols += [f"{key}_reference", f"{key}_reference_is"]
    return cols + ["seconds", "evals", "overhead_ratio", "flag"]
