"""Sampled SHAP explanations of a sweep's models, with shortcut (border, marker) and localisation (lesion) scores."""
from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import math
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sweep import attribution_scores as scores

Predict = Callable[[np.ndarray], np.ndarray]  # (N,H,W,1) float32 in [0,1] -> (N,K) probabilities

MASKER_FORMS = ("blur(k,k)", "inpaint_telea", "inpaint_ns")
TRIAL_SELECTIONS = ("pareto+parents", "pareto", "parents", "all")
CLASS_MODES = ("true", "pred")
PARENT_MODELS = ("cnn", "resnet50v2")
FAILED_STATUSES = ("error", "failed", "diverged", "running", "pending")
DEFAULT_BATCH_SIZE = 64  # largest predict batch; SHAP's Partition explainer sends batches of 2, 4, 8, ...
SEED_MAX_EVALS = 100_000  # the seed's fine-detail setting (237 minutes per image on its machine)
SUMMARY_COLUMNS = (
    "trial_id", "image_id", "label", "pred", "prob", "evals", "seconds", "border_share", "marker_share",
    "lesion_share", "pointing_hit", "target", "shap_seconds", "forward_seconds_per_image", "overhead_ratio",
)
_BLUR = re.compile(r"^blur\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


# ---------------------------------------------------------------------------------------------- checks
def check_masker(masker):
    """Return the masker shap expects, or raise naming the allowed forms. (From Python, an array of the image's
    shape is also accepted: hidden pixels take its values, e.g. the mean image of healthy training cases.)"""
    if isinstance(masker, np.ndarray):
        return masker.astype(np.float32)
    text = str(masker).strip()
    match = _BLUR.match(text)
    if match and int(match.group(1)) > 0 and int(match.group(2)) > 0:
        return f"blur({int(match.group(1))},{int(match.group(2))})"
    if text in ("inpaint_telea", "inpaint_ns"):
        return text
    raise ValueError(f"unknown masker {masker!r}; allowed forms: {', '.join(MASKER_FORMS)} (k a positive int)")


def check_class_mode(class_mode: str) -> str:
    if class_mode not in CLASS_MODES:
        raise ValueError(f"unknown class mode {class_mode!r}; choose one of {', '.join(CLASS_MODES)}")
    return class_mode


def has_checkpoint(run_dir: str | Path) -> bool:
    ckpt = Path(run_dir) / "checkpoints"
    return ckpt.is_dir() and any(ckpt.iterdir())


# ---------------------------------------------------------------------------------------------- predict
class CountingPredict:
    """Wraps a predict function; counts the rows (model evaluations) and calls it saw."""

    def __init__(self, predict: Predict):
        self.predict = predict
        self.evals = 0
        self.calls = 0
        self.seconds = 0.0  # wall time inside the model: the rest of an explanation is SHAP's own

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        self.evals += len(x)
        self.calls += 1
        t0 = time.perf_counter()
        out = np.asarray(self.predict(x))
        self.seconds += time.perf_counter() - t0
        return out


def padded_predict(apply_batch: Callable[[Any], Any], batch_size: int) -> Predict:
    """A numpy predict that pads every call to exactly `batch_size` rows (chunking larger inputs), so the jitted
    `apply_batch` compiles once whatever batch sizes SHAP asks for. (Fallback for sweep.steps.make_predict_fn.)"""

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        outs = []
        for start in range(0, len(x), batch_size):
            chunk = x[start:start + batch_size]
            n = len(chunk)
            if n < batch_size:
                chunk = np.concatenate([chunk, np.zeros((batch_size - n, *chunk.shape[1:]), chunk.dtype)])
            outs.append(np.asarray(apply_batch(chunk))[:n])
        return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)

    return predict


def bucket_sizes(max_batch: int, growth: int = 4) -> tuple[int, ...]:
    """Powers of `growth` up to max_batch (max_batch itself last), e.g. 1, 4, 16, 64."""
    if max_batch < 1 or growth < 2:
        raise ValueError(f"need max_batch >= 1 and growth >= 2, got {max_batch}, {growth}")
    sizes, b = [], 1
    while b < max_batch:
        sizes.append(b)
        b *= growth
    return tuple(sizes + [max_batch])


class BucketedPredict:
    """Routes each call to the smallest fixed-batch predictor that fits, so SHAP's geometric batches (2, 4, 8, ...)
    are padded at most `growth` x instead of all to the largest batch. One compile per bucket: growth 4 pads
    ~10% more rows than growth 2 at 300 evals but compiles half as many functions."""

    def __init__(self, make_predict: Callable[[int], Predict], max_batch: int = DEFAULT_BATCH_SIZE, growth: int = 4):
        self.max_batch = int(max_batch)
        self.sizes = bucket_sizes(self.max_batch, growth)
        self._make = make_predict
        self._predicts: dict[int, Predict] = {}

    def _for(self, size: int) -> Predict:
        if size not in self._predicts:
            self._predicts[size] = self._make(size)
        return self._predicts[size]

    def warm_up(self, image_shape: tuple[int, ...]) -> None:
        """Compile every bucket now, so no compile lands inside a timed explanation."""
        for size in self.sizes:
            self._for(size)(np.zeros((size, *image_shape), np.float32))

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        outs = []
        for start in range(0, len(x), self.max_batch):
            chunk = x[start:start + self.max_batch]
            size = next(s for s in self.sizes if s >= len(chunk))
            outs.append(np.asarray(self._for(size)(chunk))[:len(chunk)])
        return np.concatenate(outs)


def forward_seconds_per_image(predict: Predict, images: np.ndarray, batch_size: int, repeats: int = 3) -> float:
    """Best-of-`repeats` wall time of one full batch through `predict`, per image (compile excluded)."""
    images = np.asarray(images, np.float32)
    batch = np.resize(images, (batch_size, *images.shape[1:])).astype(np.float32)
    predict(batch)  # compile / warm caches
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.asarray(predict(batch))
        best = min(best, time.perf_counter() - t0)
    return best / batch_size


# ---------------------------------------------------------------------------------------------- SHAP
@dataclasses.dataclass
class ImageExplanation:
    """One image's attribution (for the `target` class) in the raw image's (H,W) coordinates."""

    image_id: str
    label: int
    target: int
    pred: int
    prob: float  # predicted probability of `pred`
    values: np.ndarray  # (H,W) float32, signed
    evals: int
    seconds: float
    model_seconds: float = float("nan")  # of `seconds`, the time spent inside the model function


def _as_float_images(images: np.ndarray) -> np.ndarray:
    """(N,H,W) or (N,H,W,1), uint8 or float in [0,1] -> (N,H,W,1) float32 in [0,1]."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    images = images.astype(np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] != 1:
        raise ValueError(f"images must be (N,H,W) or (N,H,W,1) greyscale, got shape {images.shape}")
    return images


def explain_images(predict: Predict, images: np.ndarray, *, labels: Sequence[int], classes: Sequence[str],
                   ids: Sequence[str] | None = None, max_evals: int = 300, masker: str = "blur(16,16)",
                   class_mode: str = "true", batch_size: int = DEFAULT_BATCH_SIZE) -> list[ImageExplanation]:
    """SHAP (Partition explainer) of one model on raw greyscale images; attributes the true or predicted class.

    `predict` maps (N,H,W,1) float32 in [0,1] to (N,K) probabilities and should already be compiled for the
    batch sizes it will see (see BucketedPredict.warm_up)."""
    import shap

    masker = check_masker(masker)
    check_class_mode(class_mode)
    x = _as_float_images(images)
    ids = [str(i) for i in (ids if ids is not None else range(len(x)))]
    # shap's inpaint maskers cast to uint8: hand them 0..255 images and scale back inside the model function
    scale = 255.0 if isinstance(masker, str) and masker.startswith("inpaint") else 1.0
    if isinstance(masker, np.ndarray):
        masker = masker.reshape(x.shape[1:])
    counter = CountingPredict(predict)
    model_fn = counter if scale == 1.0 else (lambda z: counter(np.asarray(z, np.float32) / scale))
    explainer = shap.Explainer(model_fn, shap.maskers.Image(masker, x.shape[1:]), output_names=list(classes))
    probs = np.asarray(predict(x))
    _warm_up_shap(explainer, x[0] * scale)
    out = []
    for i in range(len(x)):
        pred = int(np.argmax(probs[i]))
        target = int(labels[i]) if class_mode == "true" else pred
        before, model_before = counter.evals, counter.seconds
        t0 = time.perf_counter()
        explanation = explainer(x[i:i + 1] * scale, max_evals=max_evals, batch_size=batch_size,
                                outputs=[target], silent=True)
        seconds = time.perf_counter() - t0
        values = np.asarray(explanation.values)[0, ..., 0].sum(axis=-1).astype(np.float32)  # (H,W)
        out.append(ImageExplanation(ids[i], int(labels[i]), target, pred, float(probs[i, pred]), values,
                                    counter.evals - before, seconds, counter.seconds - model_before))
    return out


_SHAP_WARM = False


def _warm_up_shap(explainer, image: np.ndarray) -> None:
    """shap JIT-compiles its numba helpers on first use (seconds); do that once per process, untimed."""
    global _SHAP_WARM
    if not _SHAP_WARM:
        explainer(image[None], max_evals=8, batch_size=2, outputs=[0], silent=True)
        _SHAP_WARM = True


def shap_overhead(predict: Predict | None, images: np.ndarray, max_evals: int = 300,
                  batch_size: int = DEFAULT_BATCH_SIZE, masker: str = "blur(16,16)",
                  make_predict: Callable[[int], Predict] | None = None) -> dict[str, float]:
    """SHAP's own cost: explanation seconds / (evals x per-image forward time), over `images` (1 or more).

    Pass make_predict=loaded.predict_fn (batch size -> fixed-batch predict) to time exactly what explain_run
    does (bucketed batches, compiled before timing); or a ready `predict`. ratio <= 1.25 is the target."""
    x = _as_float_images(images)
    if make_predict is not None:
        predict = BucketedPredict(make_predict, batch_size)
        predict.warm_up(x.shape[1:])
    per_image = forward_seconds_per_image(predict, x, batch_size)
    probs = np.asarray(predict(x))
    results = explain_images(predict, x, labels=np.argmax(probs, 1), classes=[str(k) for k in range(probs.shape[1])],
                             max_evals=max_evals, masker=masker, batch_size=batch_size)
    seconds = sum(r.seconds for r in results)
    evals = sum(r.evals for r in results)
    model_seconds = sum(r.model_seconds for r in results)
    return {"seconds": seconds, "evals": float(evals), "forward_seconds_per_image": per_image,
            "ratio": seconds / (evals * per_image) if evals and per_image > 0 else float("nan"),
            # where the excess goes: padding/small batches (model_seconds > evals x forward) or SHAP itself
            "model_seconds": model_seconds, "shap_own_seconds": seconds - model_seconds}


# ---------------------------------------------------------------------------------------------- scores
def score_map(values: np.ndarray, lesion_mask: np.ndarray | None = None, marker_box=None) -> dict[str, float]:
    """The four scores of one map; marker/lesion scores are NaN where the data has no ground truth."""
    return {
        "border_share": scores.border_share(values),
        "marker_share": scores.marker_share(values, marker_box),
        "lesion_share": scores.lesion_share(values, lesion_mask),
        "pointing_hit": scores.pointing_hit(values, lesion_mask),
    }


def explain_run(run_dir: str | Path, images: np.ndarray, *, labels: Sequence[int], ids: Sequence[str] | None = None,
                lesion_masks: np.ndarray | None = None, marker_boxes: np.ndarray | None = None,
                max_evals: int = 300, masker: str = "blur(16,16)", class_mode: str = "true",
                batch_size: int = DEFAULT_BATCH_SIZE, loaded=None) -> tuple[list[dict], list[ImageExplanation]]:
    """Explain one trained run (its best checkpoint) on `images`; return summary rows and the explanations."""
    from sweep.train import load_run

    masker = check_masker(masker)
    check_class_mode(class_mode)
    if loaded is None:
        if not has_checkpoint(run_dir):
            raise FileNotFoundError(f"{run_dir} has no checkpoint (expected {Path(run_dir) / 'checkpoints'})")
        loaded = load_run(run_dir)
    predict = BucketedPredict(loaded.predict_fn, batch_size)
    x = _as_float_images(images)
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
        chosen += [r["trial_id"] for r in done if r.get("model") in PARENT_MODELS]
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


# ---------------------------------------------------------------------------------------------- results
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


def _fmt(value, digits: int = 3) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    from sweep.results import write_text_atomic

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k), 6) if isinstance(row.get(k), float) else row.get(k, "")
                         for k in columns})
    write_text_atomic(path, buf.getvalue())


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
        cells = [name(t), _fmt(m["accuracy"], 2), _fmt(m["border_share"])]
        if synthetic:
            cells += [_fmt(m["marker_share"]), _fmt(m["lesion_share"]), _fmt(m["pointing_hit"], 2)]
        per = forward_seconds.get(t)
        cells += [_fmt(m["seconds"], 2), _fmt(m.get("overhead_ratio"), 2),
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
                cells.append("1" if a == b else _fmt(float(np.mean(vals)), 2) if vals else "")
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


def _overlay(ax, image: np.ndarray, values: np.ndarray, title: str = "") -> None:
    limit = float(np.abs(values).max()) or 1.0
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.imshow(values, cmap="bwr", vmin=-limit, vmax=limit, alpha=0.55)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=7)


def write_overlay(path: Path, image: np.ndarray, values: np.ndarray, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sweep.results import write_bytes_atomic

    fig, ax = plt.subplots(figsize=(2.5, 2.5), dpi=100)
    _overlay(ax, image, values, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def write_grid(path: Path, images: np.ndarray, image_ids: Sequence[str], maps: dict[str, dict[str, np.ndarray]],
               titles: dict[str, str]) -> None:
    """One figure: a row per image, its plain image first, then one overlay per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sweep.results import write_bytes_atomic

    trials = list(maps)
    rows, cols = len(image_ids), len(trials) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.8 * rows), dpi=100, squeeze=False)
    for i, image_id in enumerate(image_ids):
        axes[i, 0].imshow(images[i], cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_axis_off()
        axes[i, 0].set_title(image_id, fontsize=6)
        for j, trial in enumerate(trials):
            _overlay(axes[i, j + 1], images[i], maps[trial][image_id], titles.get(trial, trial) if i == 0 else "")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def _save_npz(path: Path, **arrays) -> None:
    from sweep.results import write_bytes_atomic

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())


def _trial_labels(results_dir: Path) -> dict[str, str]:
    path = results_dir / "trials.csv"
    if not path.is_file():
        return {}
    out = {}
    for r in _read_csv(path):
        parts = [r.get("model", "")]
        parts += [c for c in (r.get("cnn_cut"), r.get("resnet_cut")) if c and r.get("model") == "fusion"]
        out[r["trial_id"]] = " ".join(p for p in parts if p)
    return out


def _machine() -> str:
    """e.g. 'cpu (2 cores)' or 'NVIDIA H100 80GB HBM3 (gpu)': where the forward times were measured."""
    import os

    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"this machine's CPU ({len(os.sched_getaffinity(0))} cores)"
    return f"{getattr(device, 'device_kind', device.platform)} ({device.platform})"


def explain_results(results_dir: str | Path, *, trials: str | Sequence[str] = "pareto+parents", images: int = 4,
                    max_evals: int = 300, masker: str = "blur(16,16)", class_mode: str = "true", seed: int = 0,
                    batch_size: int = DEFAULT_BATCH_SIZE, out_dir: str | Path | None = None,
                    log: Callable[[str], None] = print) -> ExplainSummary:
    """Explain the chosen trials of a sweep on one fixed, class-balanced sample of test images; write
    RESULTS/explanations/{summary.csv, agreement.csv, section.md, <trial>/<image>.npz (+ .png if synthetic)}."""
    results_dir = Path(results_dir)
    masker = check_masker(masker)
    check_class_mode(class_mode)
    if int(images) < 1 or int(max_evals) < 3:
        raise ValueError(f"need images >= 1 and max_evals >= 3, got images={images}, max_evals={max_evals}")
    dirs = trial_dirs(results_dir, select_trials(results_dir, trials))

    from data.builder import prepare
    from sweep.train import load_run

    out_dir = Path(out_dir) if out_dir else results_dir / "explanations"

    first = load_run(next(iter(dirs.values())))
    spec = first.config.data
    test = prepare(spec).split("test")
    idx = balanced_sample(test.labels, int(images), seed)  # raises before any SHAP work if too many
    x = _as_float_images(test.images[idx])
    labels = np.asarray(test.labels)[idx]
    ids = [str(i) for i in np.asarray(test.ids)[idx]]
    lesions = None if test.lesion_masks is None else np.asarray(test.lesion_masks)[idx]
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
            _save_npz(out_dir / trial_id / f"{safe}.npz", values=r.values.astype(np.float16), label=r.label,
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
        write_grid(out_dir / "grid.png", x[..., 0], ids, maps, {t: t for t in maps})
        grid = f"{out_dir.name}/grid.png" if out_dir.parent == results_dir else str(out_dir / "grid.png")
    section = render_section(means, flags, agreement, forward, synthetic=synthetic, images=len(idx),
                             max_evals=max_evals, masker=masker, class_mode=class_mode, labels_by_trial=titles,
                             grid_path=grid, machine=_machine(),
                             class_borders=border_by_class(rows, first.classes))
    _write_csv(out_dir / "summary.csv", rows, SUMMARY_COLUMNS)
    _write_csv(out_dir / "agreement.csv", agreement, ("image_id", "trial_a", "trial_b", "spearman"))
    from sweep.results import write_text_atomic

    write_text_atomic(out_dir / "section.md", section)
    return ExplainSummary(out_dir, rows, agreement, means, flags, forward, section, synthetic)
