"""Explain a sweep's chosen trials on one class-balanced sample of test images; write explanations/.

explain_results reads top to bottom: choose the trials (collapsed ones are listed, not explained) and the images
(once per sweep), gather their ground truth, explain every model on them (and on marker-free copies of the marked
synthetic images), score each map, then write summary.csv, models.csv, agreement.csv and section.md. Pictures
(overlays, the grid, the images report.html draws) are written for synthetic data only: never for real X-rays.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from data.builder import prepare
from sweep.configs.naming import config_label
from sweep.engine.load import load_run
from sweep.explain import models_table, scores
from sweep.explain.figures import save_npz, write_grid, write_overlay
from sweep.explain.ground_truth import Sample, build_sample
from sweep.explain.predict import DEFAULT_BATCH_SIZE, forward_seconds_per_image
from sweep.explain.section import agreement_rows, border_by_class, format_cell, render_section
from sweep.explain.selection import (TRIAL_SELECTIONS, balanced_sample, collapsed_trials, has_checkpoint, read_csv,
                                     select_trials, sweep_sample, trial_dirs)
from sweep.explain.shap_maps import (ImageExplanation, as_float_images, check_class_mode, check_masker,
                                     explain_images, score_map)
from sweep.files import write_text_atomic
from sweep.runtime import device_description

__all__ = ["TRIAL_SELECTIONS", "balanced_sample", "explain_results", "explain_run", "select_trials", "summary_rows",
           "trial_dirs"]
SUMMARY_COLUMNS = (
    "trial_id", "image_id", "label", "pred", "prob", "evals", "seconds", "border_share", "marker_share",
    "lesion_share", "lung_share", "pointing_hit", "nan_map", "marker_copy_share", "marker_uniform", "lesion_uniform",
    "lung_uniform", "target", "shap_seconds", "forward_seconds_per_image", "overhead_ratio",
)


def explain_run(run_dir: str | Path, images: np.ndarray, *, labels: Sequence[int], ids: Sequence[str] | None = None,
                lesion_masks: np.ndarray | None = None, marker_boxes: np.ndarray | None = None,
                max_evals: int = 300, masker: str = "blur(16,16)", class_mode: str = "true",
                batch_size: int = DEFAULT_BATCH_SIZE, loaded=None,
                lung_masks=None) -> tuple[list[dict], list[ImageExplanation]]:
    """Explain one trained run (its best checkpoint) on `images`; return summary rows and the explanations."""
    masker = check_masker(masker)
    check_class_mode(class_mode)
    if loaded is None:
        if not has_checkpoint(run_dir):
            raise FileNotFoundError(f"{run_dir} has no checkpoint (expected {Path(run_dir) / 'checkpoints'})")
        loaded = load_run(run_dir)
    predict = loaded.predict_fn(batch_size)  # one compilation: explain_images sends full batches
    x = as_float_images(images)
    per_image = forward_seconds_per_image(predict, x, batch_size)
    results = explain_images(predict, x, labels=labels, classes=loaded.classes, ids=ids, max_evals=max_evals,
                             masker=masker, class_mode=class_mode, batch_size=batch_size)
    return summary_rows(Path(run_dir).name, results, lesion_masks, marker_boxes, per_image, lung_masks), results


def summary_rows(trial_id: str, results: Sequence[ImageExplanation], lesion_masks=None, marker_boxes=None,
                 forward_seconds: float | None = None, lung_masks=None) -> list[dict]:
    """One summary.csv row per explained image: its scores (NaN for an unusable map, which nan_map marks) and the
    shares a uniform map would have in the same regions."""
    rows = []
    for i, r in enumerate(results):
        lesion = None if lesion_masks is None else lesion_masks[i]
        box = None if marker_boxes is None else marker_boxes[i]
        lung = None if lung_masks is None else lung_masks[i]
        row = {"trial_id": trial_id, "image_id": r.image_id, "label": r.label, "pred": r.pred,
               "prob": round(r.prob, 6), "evals": r.evals, "seconds": round(r.seconds, 4), "target": r.target,
               "shap_seconds": round(r.seconds - r.model_seconds, 4),  # SHAP's own time, outside the model
               "nan_map": not scores.usable(r.values)}
        if row["nan_map"]:
            row.update({k: float("nan") for k in ("border_share", "marker_share", "lesion_share", "pointing_hit")})
        else:
            row.update(score_map(r.values, lesion, box))
        row["lung_share"] = float("nan") if row["nan_map"] else scores.lung_share(r.values, lung)
        shape = np.shape(r.values)[:2]
        row.update(marker_uniform=scores.region_fraction(scores.box_mask(shape, box)),
                   lesion_uniform=scores.region_fraction(lesion), lung_uniform=scores.region_fraction(lung))
        if forward_seconds:
            row["forward_seconds_per_image"] = forward_seconds
            row["overhead_ratio"] = r.seconds / (r.evals * forward_seconds) if r.evals else float("nan")
        rows.append(row)
    return rows


def _write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: format_cell(row.get(k), 6) if isinstance(row.get(k), float) else row.get(k, "")
                         for k in columns})
    write_text_atomic(path, buf.getvalue())


def _trial_names(results_dir: Path) -> dict[str, tuple[str, str]]:
    """trial id -> (configuration label, seed) from trials.csv."""
    path = results_dir / "trials.csv"
    if not path.is_file():
        return {}
    return {r["trial_id"]: (_label(r), r.get("seed", "")) for r in read_csv(path) if r.get("model")}


def _label(row: dict) -> str:
    if row["model"] == "fusion" and any(row.get(k) in (None, "") for k in ("branch_width", "head_width")):
        return row["model"]  # a table without the configuration's columns (e.g. written by hand)
    return config_label(row)


def _safe(image_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", image_id)


@dataclasses.dataclass
class ExplainSummary:
    out_dir: Path
    rows: list[dict]
    models: list[dict]  # models.csv rows
    agreement: list[dict]
    not_explained: dict[str, str]  # trial -> why
    forward_seconds: dict[str, float]  # trial -> per-image forward seconds
    section: str
    synthetic: bool


def _choose(results_dir: Path, trials, out_dir: Path, images: int, seed: int, log):
    """(run dirs to explain, {trial: why not}, the loaded first run, its data spec, the sample, image id -> patient
    group of the test split). Fails before any
    SHAP work when a trial has no checkpoint, every chosen trial collapsed, or the test split is too small."""
    collapsed = collapsed_trials(results_dir)
    asked = select_trials(results_dir, trials)  # as asked; then without the collapsed trials
    chosen = select_trials(results_dir, trials, collapsed)
    not_explained = {t: "collapsed: one class takes over 98% of its test predictions" for t in asked if t in collapsed}
    if not chosen:
        raise ValueError(f"no trial to explain: the selection {trials!r} holds only collapsed trials "
                         f"({', '.join(not_explained) or 'none'}); pick others with --trials")
    dirs = trial_dirs(results_dir, chosen)
    for trial_id in not_explained:
        log(f"not explaining {trial_id}: collapsed")
    first = load_run(next(iter(dirs.values())))
    spec = first.config.data
    test = prepare(spec).split("test")
    rows = sweep_sample(out_dir, test.ids, test.labels, int(images), seed)  # raises before any SHAP work if too many
    patient_of = dict(zip(np.asarray(test.ids).astype(str), np.asarray(test.groups).astype(str)))
    return dirs, not_explained, first, spec, build_sample(spec, test, rows), patient_of


def _explain_model(run_dir: Path, trial_id: str, loaded, sample: Sample, settings: dict) -> tuple[list[dict], dict]:
    """Summary rows of one model on the sample (with each marked image's marker-free copy explained too), and its
    maps by image id."""
    rows, results = explain_run(run_dir, sample.images, labels=sample.labels, ids=sample.ids, loaded=loaded,
                                lesion_masks=sample.lesions, marker_boxes=sample.boxes, lung_masks=sample.lungs,
                                **settings)
    for row in rows:
        row["trial_id"] = trial_id
    if sample.marker_free:
        marked = sorted(sample.marker_free)
        _, copies = explain_run(run_dir, np.stack([sample.marker_free[i] for i in marked]),
                                labels=sample.labels[marked], ids=[sample.ids[i] for i in marked], loaded=loaded,
                                **settings)
        for i, copy in zip(marked, copies):
            rows[i]["marker_copy_share"] = scores.marker_share(copy.values, sample.boxes[i]) \
                if scores.usable(copy.values) else float("nan")
    return rows, {r.image_id: r.values for r in results}


def _write_pictures(out_dir: Path, sample: Sample, maps: dict, titles: dict[str, str]) -> str:
    """Synthetic images only: per-model overlays, the grid, and images/<id>.npz for report.html's browser."""
    x = as_float_images(sample.images)[..., 0]
    for trial_id, by_image in maps.items():
        for i, image_id in enumerate(sample.ids):
            lesion = None if sample.lesions is None else sample.lesions[i]
            box = None if sample.boxes is None else sample.boxes[i]
            write_overlay(out_dir / trial_id / f"{_safe(image_id)}.png", x[i], by_image[image_id],
                          f"{titles[trial_id]} | {image_id}", lesion=lesion, box=box)
            save_npz(out_dir / trial_id / f"{_safe(image_id)}.npz", values=by_image[image_id].astype(np.float16))
        for i, image_id in enumerate(sample.ids):
            save_npz(out_dir / "images" / f"{_safe(image_id)}.npz", image=sample.images[i],
                     lesion_mask=np.zeros(x.shape[1:], bool) if sample.lesions is None else sample.lesions[i],
                     marker_box=np.full(4, -1, np.int32) if sample.boxes is None else sample.boxes[i].astype(np.int32))
    write_grid(out_dir / "grid.png", x, sample.ids, maps, titles, lesions=sample.lesions, boxes=sample.boxes)
    return "grid.png"


def explain_results(results_dir: str | Path, *, trials: str | Sequence[str] = "pareto+parents", images: int = 4,
                    max_evals: int = 300, masker: str = "blur(16,16)", class_mode: str = "true", seed: int = 0,
                    batch_size: int = DEFAULT_BATCH_SIZE, out_dir: str | Path | None = None,
                    log: Callable[[str], None] = print) -> ExplainSummary:
    """Explain the chosen trials of a sweep on one fixed, class-balanced sample of test images; write
    RESULTS/explanations/{images.csv, summary.csv, models.csv, agreement.csv, section.md}, and for synthetic data
    the maps and overlays (<trial>/<image>.npz, .png), grid.png and images/<image>.npz."""
    results_dir = Path(results_dir)
    settings = {"max_evals": int(max_evals), "masker": check_masker(masker), "class_mode": check_class_mode(class_mode),
                "batch_size": batch_size}
    if int(images) < 1 or int(max_evals) < 3:
        raise ValueError(f"need images >= 1 and max_evals >= 3, got images={images}, max_evals={max_evals}")
    out_dir = Path(out_dir) if out_dir else results_dir / "explanations"
    dirs, not_explained, first, spec, sample, patient_of = _choose(results_dir, trials, out_dir, images, seed, log)
    synthetic = spec.source == "synthetic"
    names = _trial_names(results_dir)
    titles = {t: (f"{names[t][0]} seed {names[t][1]}".strip() if t in names else t)
              for t in list(dirs) + list(not_explained)}

    rows, maps, models, forward = [], {}, [], {}
    for trial_id, run_dir in dirs.items():
        loaded = first if run_dir == next(iter(dirs.values())) else load_run(run_dir)
        log(f"explain {titles[trial_id]} ({trial_id}): {len(sample)} images x {max_evals} evals"
            + (f" (+ {len(sample.marker_free)} marker-free copies)" if sample.marker_free else ""))
        trial_rows, maps[trial_id] = _explain_model(run_dir, trial_id, loaded, sample, settings)
        rows += trial_rows
        forward[trial_id] = trial_rows[0].get("forward_seconds_per_image", float("nan"))
        label, model_seed = names.get(trial_id, (trial_id, ""))
        models.append(models_table.model_row(trial_id, trial_rows, config=label, seed=model_seed,
                                             patient_of=patient_of))

    agreement = agreement_rows(maps)
    grid = _write_pictures(out_dir, sample, maps, titles) if synthetic else None
    if grid and out_dir.parent == results_dir:
        grid = f"{out_dir.name}/{grid}"
    section = render_section(models, agreement, forward, synthetic=synthetic, images=len(sample),
                             max_evals=max_evals, masker=settings["masker"], class_mode=class_mode,
                             labels_by_trial=titles, grid_path=grid, machine=device_description(),
                             class_borders=border_by_class(rows, first.classes), not_explained=not_explained)
    _write_csv(out_dir / "summary.csv", rows, SUMMARY_COLUMNS)
    _write_csv(out_dir / "models.csv", models, models_table.columns(models))
    _write_csv(out_dir / "agreement.csv", agreement, ("image_id", "trial_a", "trial_b", "spearman"))
    write_text_atomic(out_dir / "section.md", section)
    return ExplainSummary(out_dir, rows, models, agreement, not_explained, forward, section, synthetic)
