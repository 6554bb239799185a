"""The 'Explanations' section of report.md: per-model mean scores, shortcut flags and map agreement."""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

from sweep.explain import scores

SEED_MAX_EVALS = 100_000  # the seed's fine-detail setting (237 minutes per image on its machine)


def agreement_rows(maps: dict[str, dict[str, np.ndarray]]) -> list[dict]:
    """Spearman of every pair of models' maps, per image. maps: trial -> image_id -> (H,W)."""
    rows = []
    for a, b in itertools.combinations(list(maps), 2):
        for image_id in maps[a]:
            if image_id in maps[b]:
                rows.append({"image_id": image_id, "trial_a": a, "trial_b": b,
                             "spearman": scores.spearman(maps[a][image_id], maps[b][image_id])})
    return rows


def mean_scores(rows: Sequence[dict]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for trial in dict.fromkeys(r["trial_id"] for r in rows):
        mine = [r for r in rows if r["trial_id"] == trial]
        out[trial] = {}
        for key in ("border_share", "marker_share", "lesion_share", "pointing_hit", "seconds", "evals",
                    "overhead_ratio"):
            vals = [float(r[key]) for r in mine if r.get(key) not in (None, "") and not math.isnan(float(r[key]))]
            out[trial][key] = float(np.mean(vals)) if vals else float("nan")
        out[trial]["accuracy"] = float(np.mean([int(r["label"]) == int(r["pred"]) for r in mine]))
    return out


def border_by_class(rows: Sequence[dict], classes: Sequence[str]) -> dict[str, float]:
    """Mean border share over all models, per true class of the image."""
    out = {}
    for c, name in enumerate(classes):
        vals = [float(r["border_share"]) for r in rows if int(r["label"]) == c and not math.isnan(r["border_share"])]
        if vals:
            out[name] = float(np.mean(vals))
    return out


def shortcut_reasons(means: dict[str, dict[str, float]]) -> dict[str, list[str]]:
    """trial -> the scores ('border_share', 'marker_share') on which it is far above the other models."""
    reasons: dict[str, list[str]] = {t: [] for t in means}
    for score in ("border_share", "marker_share"):
        for trial, flagged in scores.shortcut_flags({t: m[score] for t, m in means.items()}, score).items():
            if flagged:
                reasons[trial].append(score)
    return reasons


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


def render_section(means, flags, agreement, forward_seconds, *, synthetic: bool, images: int, max_evals: int,
                   masker: str, class_mode: str, labels_by_trial: dict[str, str] | None = None,
                   grid_path: str | None = None, machine: str = "this machine",
                   class_borders: dict[str, float] | None = None) -> str:
    """The markdown 'Explanations' section that report.md includes verbatim."""
    labels_by_trial = labels_by_trial or {}
    trials = list(means)
    name = lambda t: f"{t} ({labels_by_trial[t]})" if labels_by_trial.get(t) else t  # noqa: E731
    lines = ["## Explanations", "",
             f"SHAP Partition explainer, masker `{masker}`, {max_evals} evaluations per image, {images} "
             f"class-balanced test images (the same for every model), attributing the "
             f"{'true' if class_mode == 'true' else 'predicted'} class. Scores: **border** = share of |SHAP| in "
             f"the outer 10% band (a uniform map gives 0.36)"
             + ("; **marker** = share of |SHAP| inside the burnt-in text marker's box (images with a marker); "
                "**lesion** = share of positive SHAP inside the lesion mask; **pointing** = how often the "
                "maximum lies inside the lesion mask" if synthetic else "") + ".", ""]
    if synthetic and grid_path:
        lines += [f"![SHAP overlays: red pushes towards the explained class, blue away]({grid_path})", ""]
    header = "| model | accuracy on sample | border | " + ("marker | lesion | pointing | " if synthetic else "")
    header += "s / image | overhead | 100k evals / image | flag |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for t in trials:
        m = means[t]
        cells = [name(t), format_cell(m["accuracy"], 2), format_cell(m["border_share"])]
        if synthetic:
            cells += [format_cell(m["marker_share"]), format_cell(m["lesion_share"]), format_cell(m["pointing_hit"], 2)]
        per = forward_seconds.get(t)
        cells += [format_cell(m["seconds"], 2), format_cell(m.get("overhead_ratio"), 2),
                  _duration(SEED_MAX_EVALS * per) if per else "",
                  "**possible shortcut** (" + ", ".join(flags[t]) + ")" if flags.get(t) else ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"*possible shortcut*: the model's mean border or marker share is more than "
              f"{scores.SHORTCUT_RATIO:g}x the median of the other models' and above an absolute floor "
              f"(border {scores.SHORTCUT_FLOOR['border_share']:.2f}, marker {scores.SHORTCUT_FLOOR['marker_share']:.2f}). "
              f"*overhead*: explanation seconds / (evaluations x the model's per-image forward time measured in "
              f"the same run); 1.00 means SHAP itself costs nothing. *100k evals / image*: the seed's "
              f"max_evals=100,000 setting, estimated as 100,000 x the per-image forward time on {machine}.", ""]
    if len(trials) > 1 and agreement:
        lines += ["Agreement (mean Spearman correlation of the two models' maps over the sampled images):", ""]
        lines.append("| | " + " | ".join(trials) + " |")
        lines.append("|---|" + "---|" * len(trials))
        pair: dict[tuple[str, str], list[float]] = {}
        for row in agreement:
            if not math.isnan(row["spearman"]):
                pair.setdefault((row["trial_a"], row["trial_b"]), []).append(row["spearman"])
        for a in trials:
            cells = []
            for b in trials:
                vals = pair.get((a, b)) or pair.get((b, a))
                cells.append("1" if a == b else format_cell(float(np.mean(vals)), 2) if vals else "")
            lines.append(f"| {a} | " + " | ".join(cells) + " |")
        lines.append("")
    flagged = [t for t in trials if flags.get(t)]
    if flagged:
        lines += ["**Possible shortcut learning**: " + "; ".join(f"{name(t)} ({', '.join(flags[t])})" for t in flagged)
                  + ". These models put far more attribution on the image border or burnt-in text than the "
                    "others: check them before trusting their accuracy.", ""]
    if not synthetic:
        borders = {t: means[t]["border_share"] for t in trials if not math.isnan(means[t]["border_share"])}
        if borders:
            hi = max(borders, key=borders.get)
            lines += [
                "**Real X-rays (no images are shown; numbers only).** These explanations cannot see lesions or "
                "markers directly, but the border share is a direct measure of how much the models rely on what "
                f"lies outside the lungs. A map spread evenly puts 0.36 in the border band. Here the border share "
                f"ranges from {min(borders.values()):.2f} to {max(borders.values()):.2f} (highest: {name(hi)}). "
                + ("At least one model puts more of its attribution on the border than even spreading would: "
                   "where the classes come from different sources (different borders, burnt-in text, brightness), "
                   "that is evidence the model separates the sources, not the diseases, and its accuracy "
                   "overstates what it would do on images from a single source."
                   if max(borders.values()) > 0.36 else
                   "No model puts more attribution on the border than even spreading would, so these numbers do "
                   "not show a border/text shortcut; a source confound could still act through brightness or "
                   "texture inside the lungs, which border share cannot see."), ""]
            if class_borders and len(class_borders) > 1:
                lines += ["Border share by the image's true class (mean over models): "
                          + ", ".join(f"{k} {v:.2f}" for k, v in class_borders.items())
                          + ". A large gap means the models read the border of one class's images more than the "
                            "other's, as expected when the classes come from sources that differ at the border.", ""]
    return "\n".join(lines).rstrip() + "\n"
