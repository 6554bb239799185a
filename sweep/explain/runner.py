"""Explain a sweep's chosen trials on one class-balanced sample of test images; write explanations/."""
from __future__ import annotations

import csv
import dataclasses
import io
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from data.builder import prepare
from models.registry import PARENT_NAMES
from sweep.configs.naming import config_label
from sweep.engine.load import load_run
from sweep.explain.figures import save_npz, write_grid, write_overlay
from sweep.explain.predict import DEFAULT_BATCH_SIZE, BucketedPredict, forward_seconds_per_image
from sweep.explain.section import (agreement_rows, border_by_class, format_cell, mean_scores, render_section,
                                   shortcut_reasons)
from sweep.explain.shap_maps import (ImageExplanation, as_float_images, check_class_mode, check_masker,
                                     explain_images, score_map)
from sweep.files import write_text_atomic
from sweep.runtime import device_description

TRIAL_SELECTIONS = ("pareto+parents", "pareto", "parents", "all")
FAILED_STATUSES = ("error", "failed", "diverged", "running", "pending")
SUMMARY_COLUMNS = (
    "trial_id", "image_id", "label", "pred", "prob", "evals", "seconds", "border_share", "marker_share",
    "lesion_share", "pointing_hit", "target", "shap_seconds", "forward_seconds_per_image", "overhead_ratio",
)


def has_checkpoint(run_dir: str | Path) -> bool:
    ckpt = Path(run_dir) / "checkpoints"
    return ckpt.is_dir() and any(ckpt.iterdir())


def explain_run(run_dir: str | Path, images: np.ndarray, *, labels: Sequence[int], ids: Sequence[str] | None = None,
                lesion_masks: np.ndarray | None = None, marker_boxes: np.ndarray | None = None,
                max_evals: int = 300, masker: str = "blur(16,16)", class_mode: str = "true",
                batch_size: int = DEFAULT_BATCH_SIZE, loaded=None) -> tuple[list[dict], list[ImageExplanation]]:
    """Explain one trained run (its best checkpoint) on `images`; return summary rows and the explanations."""
    masker = check_masker(masker)
    check_class_mode(class_mode)
    if loaded is None:
        if not has_checkpoint(run_dir):
            raise FileNotFoundError(f"{run_dir} has no checkpoint (expected {Path(run_dir) / 'checkpoints'})")
        loaded = load_run(run_dir)
    predict = BucketedPredict(loaded.predict_fn, batch_size)
    x = as_float_images(images)
    predict.warm_up(x.shape[1:])
    per_image = forward_seconds_per_image(predict, x, predict.max_batch)
    results = explain_images(predict, x, labels=labels, classes=loaded.classes, ids=ids, max_evals=max_evals,
                             masker=masker, class_mode=class_mode, batch_size=predict.max_batch)
    return summary_rows(Path(run_dir).name, results, lesion_masks, marker_boxes, per_image), results


def summary_rows(trial_id: str, results: Sequence[ImageExplanation], lesion_masks=None, marker_boxes=None,
                 forward_seconds: float | None = None) -> list[dict]:
    rows = []
    for i, r in enumerate(results):
        row = {"trial_id": trial_id, "image_id": r.image_id, "label": r.label, "pred": r.pred,
               "prob": round(r.prob, 6), "evals": r.evals, "seconds": round(r.seconds, 4), "target": r.target,
               "shap_seconds": round(r.seconds - r.model_seconds, 4)}  # SHAP's own time, outside the model
        row.update(score_map(r.values, None if lesion_masks is None else lesion_masks[i],
                             None if marker_boxes is None else marker_boxes[i]))
        if forward_seconds:
            row["forward_seconds_per_image"] = forward_seconds
            row["overhead_ratio"] = r.seconds / (r.evals * forward_seconds) if r.evals else float("nan")
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- selection
def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def select_trials(results_dir: str | Path, trials: str | Sequence[str] = "pareto+parents") -> list[str]:
    """Trial ids to explain: from pareto.csv and/or the parents (model cnn / resnet50v2) in trials.csv,
    every trial in trials.csv ('all'), or an explicit list (also 'ID,ID,...')."""
    results_dir = Path(results_dir)
    table_path = results_dir / "trials.csv"
    table = _read_csv(table_path) if table_path.is_file() else []
    if isinstance(trials, str) and trials not in TRIAL_SELECTIONS:
        trials = [t.strip() for t in trials.split(",") if t.strip()]
    if not isinstance(trials, str):
        return list(dict.fromkeys(str(t) for t in trials))
    if not table:
        raise FileNotFoundError(f"{table_path} is missing or empty; pass trial ids explicitly")
    done = [r for r in table if str(r.get("status", "")).lower() not in FAILED_STATUSES]
    chosen: list[str] = []
    if "pareto" in trials:
        pareto_path = results_dir / "pareto.csv"
        if not pareto_path.is_file():
            raise FileNotFoundError(f"{pareto_path} is missing; use --trials parents|all|ID,...")
        chosen += [r["trial_id"] for r in _read_csv(pareto_path)]
    if "parents" in trials:
        chosen += [r["trial_id"] for r in done if r.get("model") in PARENT_NAMES]
    if trials == "all":
        chosen += [r["trial_id"] for r in done]
    return list(dict.fromkeys(chosen))


def trial_dirs(results_dir: str | Path, trial_ids: Sequence[str]) -> dict[str, Path]:
    """trial id -> run dir (RESULTS/trials/<id>), failing before any work if one is missing or has no checkpoint."""
    results_dir = Path(results_dir)
    dirs, problems = {}, []
    for trial_id in trial_ids:
        run_dir = Path(trial_id) if Path(trial_id).is_dir() else results_dir / "trials" / trial_id
        if not run_dir.is_dir():
            problems.append(f"{trial_id}: no run dir {run_dir}")
        elif not has_checkpoint(run_dir):
            problems.append(f"{trial_id}: no checkpoint in {run_dir / 'checkpoints'}")
        else:
            dirs[trial_id] = run_dir
    if problems:
        known = sorted(p.name for p in (results_dir / "trials").glob("*") if p.is_dir())
        raise FileNotFoundError("cannot explain: " + "; ".join(problems)
                                + (f" (trials with a run dir: {', '.join(known[:20])})" if known else ""))
    if not dirs:
        raise ValueError(f"no trials selected in {results_dir}")
    return dirs


def balanced_sample(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of n images, as equal per class as the split allows (round robin over shuffled classes)."""
    labels = np.asarray(labels)
    if n > len(labels):
        raise ValueError(f"asked for {n} images but the test split has only {len(labels)}")
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < n:
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(int(pool.pop(0)))
    return np.array(sorted(picked), dtype=int)


@dataclasses.dataclass
class ExplainSummary:
    out_dir: Path
    rows: list[dict]
    agreement: list[dict]
    mean_scores: dict[str, dict[str, float]]  # trial -> score -> mean
    flags: dict[str, list[str]]  # trial -> reasons ("border_share", "marker_share")
    forward_seconds: dict[str, float]  # trial -> per-image forward seconds
    section: str
    synthetic: bool


def _write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: format_cell(row.get(k), 6) if isinstance(row.get(k), float) else row.get(k, "")
                         for k in columns})
    write_text_atomic(path, buf.getvalue())


def _trial_labels(results_dir: Path) -> dict[str, str]:
    path = results_dir / "trials.csv"
    if not path.is_file():
        return {}
    return {r["trial_id"]: config_label(r) for r in _read_csv(path) if r.get("model")}


def _save_images(folder: Path, x: np.ndarray, ids: list[str], lesions, boxes) -> None:
    """Synthetic images only (never real X-rays): uint8 image, lesion mask and marker box [y0,x0,y1,x1) (-1: none)."""
    for i, image_id in enumerate(ids):
        save_npz(folder / f"{re.sub(r'[^A-Za-z0-9._-]', '_', image_id)}.npz",
                 image=np.round(x[i, ..., 0] * 255).astype(np.uint8),
                 lesion_mask=np.zeros(x.shape[1:3], bool) if lesions is None else np.asarray(lesions[i], bool),
                 marker_box=np.full(4, -1, np.int32) if boxes is None else np.asarray(boxes[i], np.int32))


def explain_results(results_dir: str | Path, *, trials: str | Sequence[str] = "pareto+parents", images: int = 4,
                    max_evals: int = 300, masker: str = "blur(16,16)", class_mode: str = "true", seed: int = 0,
                    batch_size: int = DEFAULT_BATCH_SIZE, out_dir: str | Path | None = None,
                    log: Callable[[str], None] = print) -> ExplainSummary:
    """Explain the chosen trials of a sweep on one fixed, class-balanced sample of test images; write
    RESULTS/explanations/{summary.csv, agreement.csv, section.md, <trial>/<image>.npz (+ .png if synthetic)}, and
    for synthetic data images/<image>.npz (the image, lesion mask and marker box that report.html draws)."""
    results_dir = Path(results_dir)
    masker = check_masker(masker)
    check_class_mode(class_mode)
    if int(images) < 1 or int(max_evals) < 3:
        raise ValueError(f"need images >= 1 and max_evals >= 3, got images={images}, max_evals={max_evals}")
    dirs = trial_dirs(results_dir, select_trials(results_dir, trials))

    out_dir = Path(out_dir) if out_dir else results_dir / "explanations"

    first = load_run(next(iter(dirs.values())))
    spec = first.config.data
    test = prepare(spec).split("test")
    idx = balanced_sample(test.labels, int(images), seed)  # raises before any SHAP work if too many
    x = as_float_images(test.images[idx])
    labels = np.asarray(test.labels)[idx]
    ids = [str(i) for i in np.asarray(test.ids)[idx]]
    lesions = None if test.lesion_masks is None else test.lesion_masks[idx]  # reads just the sampled records
    boxes = None if test.marker_boxes is None else np.asarray(test.marker_boxes)[idx]
    synthetic = spec.source == "synthetic"

    rows, maps, forward = [], {}, {}
    for trial_id, run_dir in dirs.items():
        loaded = first if run_dir == next(iter(dirs.values())) else load_run(run_dir)
        log(f"explain {trial_id}: {len(idx)} images x {max_evals} evals")
        trial_rows, results = explain_run(run_dir, x, labels=labels, ids=ids, lesion_masks=lesions,
                                          marker_boxes=boxes, max_evals=max_evals, masker=masker,
                                          class_mode=class_mode, batch_size=batch_size, loaded=loaded)
        for row in trial_rows:
            row["trial_id"] = trial_id
        rows += trial_rows
        forward[trial_id] = trial_rows[0].get("forward_seconds_per_image", float("nan"))
        maps[trial_id] = {r.image_id: r.values for r in results}
        for i, r in enumerate(results):
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", r.image_id)
            save_npz(out_dir / trial_id / f"{safe}.npz", values=r.values.astype(np.float16), label=r.label,
                      target=r.target, pred=r.pred, prob=r.prob)
            if synthetic:  # real X-rays must never be written out as images
                write_overlay(out_dir / trial_id / f"{safe}.png", x[i, ..., 0], r.values,
                              f"{trial_id} {r.image_id} y={r.label} p={r.pred}")

    agreement = agreement_rows(maps)
    means = mean_scores(rows)
    flags = shortcut_reasons(means)
    titles = _trial_labels(results_dir)
    grid = None
    if synthetic:
        _save_images(out_dir / "images", x, ids, lesions, boxes)
        write_grid(out_dir / "grid.png", x[..., 0], ids, maps, {t: t for t in maps})
        grid = f"{out_dir.name}/grid.png" if out_dir.parent == results_dir else str(out_dir / "grid.png")
    section = render_section(means, flags, agreement, forward, synthetic=synthetic, images=len(idx),
                             max_evals=max_evals, masker=masker, class_mode=class_mode, labels_by_trial=titles,
                             grid_path=grid, machine=device_description(),
                             class_borders=border_by_class(rows, first.classes))
    _write_csv(out_dir / "summary.csv", rows, SUMMARY_COLUMNS)
    _write_csv(out_dir / "agreement.csv", agreement, ("image_id", "trial_a", "trial_b", "spearman"))
    write_text_atomic(out_dir / "section.md", section)
    return ExplainSummary(out_dir, rows, agreement, means, flags, forward, section, synthetic)
