"""The 'Explanations' section of report.md: per-model shares with 90% intervals and their references, the
'possible shortcut' flags, unusable maps, models left out, and how the models' maps agree."""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

from sweep.explain import scores
from sweep.explain.models_table import flag_reasons

SEED_MAX_EVALS = 100_000  # the seed's fine-detail setting (237 minutes per image on its machine)
SHARE_WORDS = {"border_share": "border", "marker_share": "marker", "lesion_share": "lesion", "lung_share": "lung"}


def agreement_rows(maps: dict[str, dict[str, np.ndarray]]) -> list[dict]:
    """Spearman of every pair of models' maps, per image. maps: trial -> image_id -> (H,W)."""
    rows = []
    for a, b in itertools.combinations(list(maps), 2):
        for image_id in maps[a]:
            if image_id in maps[b]:
                rows.append({"image_id": image_id, "trial_a": a, "trial_b": b,
                             "spearman": scores.spearman(maps[a][image_id], maps[b][image_id])})
    return rows


def border_by_class(rows: Sequence[dict], classes: Sequence[str]) -> dict[str, float]:
    """Mean border share over all models' usable maps, per true class of the image."""
    out = {}
    for c, name in enumerate(classes):
        vals = [float(r["border_share"]) for r in rows if int(r["label"]) == c and not r.get("nan_map")
                and not math.isnan(float(r["border_share"]))]
        if vals:
            out[name] = float(np.mean(vals))
    return out


def format_cell(value, digits: int = 3) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _share_cell(row: dict, share: str) -> str:
    value = row.get(share)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    lo, hi = row.get(f"{share}_lo"), row.get(f"{share}_hi")
    text = f"{value:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and not math.isnan(lo) else "")
    ref = row.get(f"{share}_reference")
    if share in ("border_share", "marker_share", "lung_share") and ref is not None and not math.isnan(ref):
        text += f" (ref {ref:.3f})"
    return text


def _intro(synthetic: bool, images: int, max_evals: int, masker: str, class_mode: str, shares: list[str]) -> list[str]:
    words = {"border_share": f"**border** = share of |SHAP| in the outer 10% band (a uniform map: "
                             f"{scores.UNIFORM_BORDER_SHARE:.2f})",
             "marker_share": "**marker** = share of |SHAP| inside the burnt-in text marker's box (images with a "
                             "marker; reference: the same model's share of that box on the copy with the marker "
                             "removed)",
             "lesion_share": "**lesion** = share of positive SHAP inside the lesion mask",
             "lung_share": "**lung** = share of |SHAP| inside the lung fields (reference: their area, a uniform "
                           "map's share)"}
    return ["## Explanations", "",
            f"SHAP Partition explainer, masker `{masker}`, {max_evals} evaluations per image, {images} class-balanced "
            f"test images chosen once for the sweep (the same for every model), attributing the "
            f"{'true' if class_mode == 'true' else 'predicted'} class. Each share is the mean over the images with a "
            "90% bootstrap interval over patients (films of one patient resampled together). " + "; ".join(words[s] for s in shares)
            + (". **pointing** = how often the map's maximum lies inside the lesion mask" if synthetic else "") + ".",
            ""]


def _table(models: list[dict], shares: list[str], synthetic: bool, forward_seconds: dict, names: dict) -> list[str]:
    head = ["model", "images (unusable maps)", "accuracy on sample"] + [SHARE_WORDS[s] + " [90%]" for s in shares]
    head += (["pointing"] if synthetic else []) + ["s / image", "overhead", "100k evals / image", "flag"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in models:
        per = forward_seconds.get(m["trial_id"])
        cells = [names.get(m["trial_id"], m["trial_id"]), f"{m['n_images']} ({m['n_nan']})",
                 format_cell(m["accuracy"], 2)] + [_share_cell(m, s) for s in shares]
        cells += [format_cell(m.get("pointing_hit"), 2)] if synthetic else []
        cells += [format_cell(m.get("seconds"), 2), format_cell(m.get("overhead_ratio"), 2),
                  _duration(SEED_MAX_EVALS * per) if per else "",
                  f"**possible shortcut** ({m['flag']})" if m.get("flag") else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _agreement(trials: list[str], agreement: list[dict], names: dict) -> list[str]:
    if len(trials) < 2 or not agreement:
        return []
    pair: dict[tuple[str, str], list[float]] = {}
    for row in agreement:
        if not math.isnan(row["spearman"]):
            pair.setdefault((row["trial_a"], row["trial_b"]), []).append(row["spearman"])
    lines = ["Agreement (mean Spearman correlation of the two models' maps over the sampled images):", "",
             "| | " + " | ".join(names.get(t, t) for t in trials) + " |", "|---|" + "---|" * len(trials)]
    for a in trials:
        cells = []
        for b in trials:
            vals = pair.get((a, b)) or pair.get((b, a))
            cells.append("1" if a == b else format_cell(float(np.mean(vals)), 2) if vals else "")
        lines.append(f"| {names.get(a, a)} | " + " | ".join(cells) + " |")
    return lines + [""]


def _real_data_lines(models: list[dict], names: dict, class_borders: dict | None) -> list[str]:
    borders = {m["trial_id"]: m["border_share"] for m in models if not math.isnan(m["border_share"])}
    if not borders:
        return []
    above = [m for m in models if "border_share" in flag_reasons(m)]
    lines = ["**Real X-rays (no images or maps are written; numbers only).** The border share measures how much "
             f"the models rely on what lies at the film's edge. A map spread evenly puts "
             f"{scores.UNIFORM_BORDER_SHARE:.2f} in the border band; here the border share ranges from "
             f"{min(borders.values()):.2f} to {max(borders.values()):.2f}. "
             + (f"{', '.join(names.get(m['trial_id'], m['trial_id']) for m in above)}: the whole 90% interval lies "
                "above that: where the classes come from different sources (different borders, burnt-in text, "
                "brightness), that is evidence the model separates the sources, not the diseases."
                if above else "No model's interval lies wholly above it, so these numbers do not show a border/text "
                              "shortcut; a source confound could still act through brightness or texture inside "
                              "the lungs, which the border share cannot see."), ""]
    if class_borders and len(class_borders) > 1:
        lines += ["Border share by the image's true class (mean over models): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in class_borders.items())
                  + ". A large gap means the models read the border of one class's images more than the other's, "
                    "as expected when the classes come from sources that differ at the border.", ""]
    return lines


def render_section(models: list[dict], agreement: list[dict], forward_seconds: dict[str, float], *, synthetic: bool,
                   images: int, max_evals: int, masker: str, class_mode: str, labels_by_trial: dict | None = None,
                   grid_path: str | None = None, machine: str = "this machine", class_borders: dict | None = None,
                   not_explained: dict[str, str] | None = None) -> str:
    """The markdown 'Explanations' section that report.md includes verbatim. models: models.csv rows."""
    names = labels_by_trial or {}
    shares = [s for s in SHARE_WORDS if any(not math.isnan(m.get(s, float("nan"))) for m in models)] or ["border_share"]
    lines = _intro(synthetic, images, max_evals, masker, class_mode, shares)
    if synthetic and grid_path:
        lines += [f"![SHAP overlays: red pushes towards the explained class, blue away; green outline: lesion, "
                  f"yellow box: marker]({grid_path})", ""]
    lines += _table(models, shares, synthetic, forward_seconds, names)
    lines += ["", "*possible shortcut*: the share's whole 90% interval lies beyond its reference (border and marker: "
              f"above it; lung: below it); a share over fewer than {scores.MIN_IMAGES} images has no interval and "
              "no flag. *unusable maps*: NaN or all-zero maps, left out of the shares. *overhead*: "
              "explanation seconds / (evaluations x the model's per-image forward time measured in the same run); "
              "1.00 means SHAP itself costs nothing. *100k evals / image*: the seed's max_evals=100,000 setting, "
              f"estimated as 100,000 x the per-image forward time on {machine}.", ""]
    unusable = sum(m["n_nan"] for m in models)
    if unusable:
        lines += [f"**{unusable} of {sum(m['n_images'] for m in models)} maps were NaN or all zero** ("
                  + ", ".join(f"{names.get(m['trial_id'], m['trial_id'])}: {m['n_nan']}" for m in models if m["n_nan"])
                  + "); their shares come from the remaining maps only.", ""]
    if not_explained:
        lines += ["Not explained: " + "; ".join(f"{names.get(t, t)} ({why})" for t, why in not_explained.items())
                  + ".", ""]
    lines += _agreement([m["trial_id"] for m in models], agreement, names)
    flagged = [m for m in models if m.get("flag")]
    if flagged:
        lines += ["**Possible shortcut learning**: " + "; ".join(f"{names.get(m['trial_id'], m['trial_id'])} "
                                                                 f"({m['flag']})" for m in flagged)
                  + ". Check these models before trusting their accuracy.", ""]
    if not synthetic:
        lines += _real_data_lines(models, names, class_borders)
    return "\n".join(lines).rstrip() + "\n"
