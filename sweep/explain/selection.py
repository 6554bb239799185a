"""What an explanation run explains: which trials (collapsed ones are listed, not explained) and which test
images (class-balanced, chosen once per sweep and recorded in explanations/images.csv so every later run and
every model uses the same ones)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from models.registry import PARENT_NAMES
from sweep.files import write_text_atomic

TRIAL_SELECTIONS = ("pareto+parents", "pareto", "parents", "all")
FAILED_STATUSES = ("error", "failed", "diverged", "running", "pending")
IMAGES_FILE = "images.csv"


def has_checkpoint(run_dir: str | Path) -> bool:
    ckpt = Path(run_dir) / "checkpoints"
    return ckpt.is_dir() and any(ckpt.iterdir())


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def select_trials(results_dir: str | Path, trials: str | Sequence[str] = "pareto+parents",
                  collapsed: set[str] | frozenset = frozenset()) -> list[str]:
    """Trial ids to explain: the Pareto front and/or the parents (model cnn / resnet50v2) in trials.csv, every
    trial in trials.csv ('all'), or an explicit list (also 'ID,ID,...'). Trials in `collapsed` are left out of the
    selections, and the front is then drawn over the configurations that did not collapse."""
    results_dir = Path(results_dir)
    table_path = results_dir / "trials.csv"
    table = read_csv(table_path) if table_path.is_file() else []
    if isinstance(trials, str) and trials not in TRIAL_SELECTIONS:
        trials = [t.strip() for t in trials.split(",") if t.strip()]
    if not isinstance(trials, str):
        return [t for t in dict.fromkeys(str(t) for t in trials) if t not in collapsed]
    if not table:
        raise FileNotFoundError(f"{table_path} is missing or empty; pass trial ids explicitly")
    done = [r for r in table if str(r.get("status", "")).lower() not in FAILED_STATUSES and r["trial_id"] not in collapsed]
    chosen: list[str] = []
    if "pareto" in trials:
        chosen += pareto_trials(results_dir, collapsed)
    if "parents" in trials:
        chosen += [r["trial_id"] for r in done if r.get("model") in PARENT_NAMES]
    if trials == "all":
        chosen += [r["trial_id"] for r in done]
    return list(dict.fromkeys(chosen))


def pareto_trials(results_dir: Path, collapsed: set[str] | frozenset = frozenset()) -> list[str]:
    """One trial (its first seed that did not collapse) per configuration on the Pareto front of params against
    mean test accuracy, drawn over the trials that did not collapse; pareto.csv's first ids when none collapsed and
    it exists (a hand-written table may lack the configuration columns). Inside a sweep the explanations come
    before the report writes pareto.csv, so without it the front is drawn from the trials."""
    pareto_path = results_dir / "pareto.csv"
    if not collapsed and pareto_path.is_file():
        return [r["trial_id"] for r in read_csv(pareto_path) if r.get("trial_id")]
    from sweep.analysis.tables import by_configuration, config_table, pareto_front
    from sweep.tune.results import read_trials

    try:
        trials = read_trials(results_dir)
    except KeyError:  # a hand-written table without the configuration columns: only pareto.csv names the front
        raise FileNotFoundError(f"{pareto_path} is missing; use --trials parents|all|ID,...") from None
    ok = trials[trials["test_accuracy"].notna() & ~trials["trial_id"].astype(str).isin(collapsed)
                & ~trials["status"].astype(str).str.lower().isin(FAILED_STATUSES)]
    front = pareto_front(config_table(ok)) if len(ok) else None
    if front is None or not len(front):
        return []
    labels = set(front["label"])
    chosen = []
    for group in by_configuration(ok):
        if config_table(group)["label"].iloc[0] in labels:
            chosen.append(str(group.sort_values("seed")["trial_id"].iloc[0]))
    return chosen


def collapsed_trials(results_dir: str | Path) -> set[str]:
    """Trial ids whose test predictions are more than 98% one class (trials.csv, predictions.parquet or recalls)."""
    import pandas as pd

    from sweep.analysis.shift import collapsed
    from sweep.tune.results import stored_trials

    results_dir = Path(results_dir)
    trials = stored_trials(results_dir)
    if trials is None:
        return set()
    predictions = None
    if "collapsed" not in trials and (results_dir / "predictions.parquet").is_file():
        predictions = pd.read_parquet(results_dir / "predictions.parquet", columns=["trial_id", "split", "pred"])
    flags = collapsed(trials, predictions)
    return set(trials.loc[flags.to_numpy(bool), "trial_id"].astype(str))


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


def sweep_sample(out_dir: Path, ids: np.ndarray, labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """The sweep's explained test images (rows of the test split): the ones explanations/images.csv records when
    it names n images that are all in this test split, else a new balanced sample, recorded there."""
    ids = np.asarray(ids).astype(str)
    path = out_dir / IMAGES_FILE
    if path.is_file():
        recorded = [r["image_id"] for r in read_csv(path)]
        row_of = {image_id: i for i, image_id in enumerate(ids)}
        if len(recorded) == n and all(r in row_of for r in recorded):
            return np.array(sorted(row_of[r] for r in recorded), dtype=int)
    rows = balanced_sample(labels, n, seed)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["image_id", "label"])
    writer.writerows([ids[i], int(labels[i])] for i in rows)
    write_text_atomic(path, buffer.getvalue())
    return rows
