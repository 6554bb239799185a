"""What the analysis reads: trials.csv and, when present, predictions.parquet of a results folder, checked.

It decides which trials count for one split: rows with that split's accuracy that did not end in error,
less the collapsed ones (one class takes more than COLLAPSE_SHARE of the test predictions). Input that cannot
be analysed raises InputError with one line that names the file, column or trial at fault.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from sweep import UsageError
from sweep.analysis import clusters
from sweep.configs.naming import CONFIG_KEYS

IDENTITY = ("trial_id", *CONFIG_KEYS, "seed")
SIZE_AXES = ("params", "flops", "latency_ms")
COLLAPSE_SHARE = 0.98
PREDICTION_COLUMNS = ("trial_id", "split", "image_id", "label", "pred")


class InputError(UsageError):
    """The results folder cannot be analysed as asked; the message is one line that says why (exit 2)."""


@dataclasses.dataclass
class TrialSet:
    """The trials of one split: all rows (with a `collapsed` column), the rows that count, and per-image correctness."""

    split: str
    accuracy: str                 # trials.csv column of the split's accuracy
    n_column: str                 # trials.csv column of the split's image count
    rows: object                  # DataFrame: every trial, `collapsed` filled in
    used: object                  # DataFrame: trials that count (metric present, no error, not collapsed)
    failed: list[str]             # trial ids without the metric or ended in error
    collapse_source: str          # "predictions", "trials.csv", "recalls" or "unknown"
    correct: object = None        # DataFrame trial_id x image_id of 0/1 for the used trials, or None
    codes: object = None          # patient code (clusters.patient_codes) per column of `correct`, or None

    @property
    def collapsed(self):
        return self.rows[self.rows["collapsed"] & self.rows["trial_id"].isin(self._scored)]

    @property
    def _scored(self):
        return self.rows.loc[~self.rows["trial_id"].isin(self.failed), "trial_id"]


def split_columns(split: str) -> tuple[str, str]:
    """(accuracy column, image-count column) of a split: `test` or `ext:NAME`."""
    if split == "test":
        return "test_accuracy", "test_n"
    match = re.fullmatch(r"ext:([a-z0-9_]+)", split)
    if not match:
        raise InputError(f"unknown split {split!r}; choose 'test' or 'ext:NAME' (NAME in [a-z0-9_]+)")
    return f"ext_{match.group(1)}_accuracy", f"ext_{match.group(1)}_n"


def read_tables(results_dir: str | Path):
    """(trials, predictions or None) of a results folder; InputError when trials.csv is missing or empty."""
    import pandas as pd

    results_dir = Path(results_dir)
    path = results_dir / "trials.csv"
    if not path.is_file():
        where = "no such folder" if not results_dir.is_dir() else "no trials.csv in it"
        raise InputError(f"{results_dir}: {where} (expected a results folder made by `fusion-sweep run`)")
    try:
        trials = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise InputError(f"{path}: not a readable CSV table ({str(err).splitlines()[0]})") from None
    if trials.empty:
        raise InputError(f"{path}: no trials in it")
    return trials, read_predictions(results_dir)


def read_predictions(results_dir: str | Path):
    """predictions.parquet of a results folder, or None when the sweep wrote none."""
    import pandas as pd

    path = Path(results_dir) / "predictions.parquet"
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path}: unreadable ({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None


def select(trials, predictions, size: str, split: str = "test") -> TrialSet:
    """The TrialSet of `split`, after checking columns, metrics and predictions against each other."""
    accuracy, n_column = split_columns(split)
    if size not in SIZE_AXES:
        raise InputError(f"unknown size axis {size!r}; choose from {', '.join(SIZE_AXES)}")
    trials = _with_test_n(trials)
    missing = [c for c in (*IDENTITY, size, accuracy, n_column) if c not in trials.columns]
    if missing:
        raise InputError(f"trials.csv lacks column(s) {', '.join(missing)} needed to analyse --size {size} "
                         f"--split {split}")
    rows = trials.copy()
    rows["trial_id"] = rows["trial_id"].astype(str)
    if rows["trial_id"].duplicated().any():
        raise InputError(f"trials.csv repeats trial_id {rows.loc[rows['trial_id'].duplicated(), 'trial_id'].iloc[0]!r}")
    # rows a scheduler stopped (scored only with --score-stopped) trained less than the others: drawn, not fitted
    scored = rows[accuracy].notna() & ~_errored(rows) & ~stopped_by_scheduler(rows)
    if not scored.any():
        raise InputError(f"trials.csv: no trial has {accuracy} (no {split} metrics to analyse)")
    rows["collapsed"], source = collapsed_flags(rows, predictions)
    used = rows[scored & ~rows["collapsed"]]
    failed = rows.loc[~scored, "trial_id"].tolist()
    correct = _correctness(predictions, rows, rows[scored], split, accuracy, n_column)
    codes = None
    if correct is not None:
        correct = correct.loc[used["trial_id"]]
        codes = clusters.patient_codes(correct.columns, patients_of(predictions, split))
    return TrialSet(split, accuracy, n_column, rows, used, failed, source, correct, codes)


def patients_of(predictions, split: str):
    """image_id -> patient_id of a split's predictions (a Series), or None when the column is absent (predictions
    written before patient_id existed: each image is then its own patient)."""
    if predictions is None or "patient_id" not in predictions.columns:
        return None
    part = predictions.loc[predictions["split"] == split, ["image_id", "patient_id"]]
    part = part.dropna(subset=["patient_id"]).drop_duplicates("image_id")
    return part.set_index(part["image_id"].astype(str))["patient_id"].astype(str)


def _with_test_n(trials):
    """Tables written before `test_n` existed still say it, as the sum of the per-class test supports."""
    supports = [c for c in trials.columns if c.startswith("test_support_")]
    if "test_n" in trials.columns or not supports:
        return trials
    return trials.assign(test_n=trials[supports].sum(axis=1, min_count=len(supports)))


def stopped_by_scheduler(rows):
    """True for the rows of trials ASHA/HyperBand stopped before their last epoch."""
    if "train_status" not in rows:
        return np.zeros(len(rows), bool)
    return rows["train_status"].astype(str).str.lower().eq("stopped_by_scheduler").to_numpy()


def _errored(rows):
    status = rows["status"].astype(str).str.upper() if "status" in rows else None
    bad = status.eq("ERROR") if status is not None else False
    if "train_status" in rows:
        bad = bad | rows["train_status"].astype(str).str.lower().eq("error")
    return bad if not isinstance(bad, bool) else np.zeros(len(rows), bool)


def collapsed_flags(rows, predictions):
    """(bool per row, where it came from): test predictions first, then trials.csv, then per-class recalls."""
    if predictions is not None and "pred" in predictions and (predictions.get("split") == "test").any():
        test = predictions[predictions["split"] == "test"]
        counts = test.groupby([test["trial_id"].astype(str), test["pred"].astype(str)]).size()
        top_share = counts.groupby(level=0).max() / counts.groupby(level=0).sum()
        return rows["trial_id"].map(top_share).fillna(0.0).gt(COLLAPSE_SHARE).to_numpy(), "predictions"
    if "collapsed" in rows:
        flags = rows["collapsed"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0", "yes"))
        return flags.to_numpy(bool), "trials.csv"
    shares = _predicted_shares(rows)
    if shares is not None:
        return (shares.max(axis=1) > COLLAPSE_SHARE).to_numpy(), "recalls"
    return np.zeros(len(rows), bool), "unknown"


def _predicted_shares(rows):
    """Share of test predictions per class from recall_<C> and test_support_<C> (two classes only), or None."""
    classes = [c[len("recall_"):] for c in rows.columns if c.startswith("recall_")]
    if len(classes) != 2 or any(f"test_support_{c}" not in rows for c in classes):
        return None
    a, b = classes
    ra, rb = rows[f"recall_{a}"].astype(float), rows[f"recall_{b}"].astype(float)
    na, nb = rows[f"test_support_{a}"].astype(float), rows[f"test_support_{b}"].astype(float)
    to_a = ra * na + (1 - rb) * nb
    import pandas as pd

    return pd.DataFrame({a: to_a / (na + nb), b: 1 - to_a / (na + nb)}).fillna(0.0)


def _correctness(predictions, rows, scored, split: str, accuracy: str, n_column: str):
    """trial_id x image_id 0/1 table for the scored trials, checked against trials.csv; None without predictions."""
    if predictions is None:
        return None
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise InputError(f"predictions.parquet lacks column(s) {', '.join(missing)}")
    part = predictions[predictions["split"] == split]
    if part.empty:
        return None
    part = part.assign(trial_id=part["trial_id"].astype(str))
    unknown = sorted(set(part["trial_id"]) - set(rows["trial_id"]))
    if unknown:
        raise InputError(f"predictions.parquet names trial {unknown[0]!r}, which trials.csv does not have")
    if part.duplicated(["trial_id", "image_id"]).any():
        raise InputError(f"predictions.parquet repeats an image for one trial in split {split!r}")
    correct = (part["pred"].astype(str) == part["label"].astype(str)).astype(float)
    part = part[part["trial_id"].isin(set(scored["trial_id"]))]
    table = part.assign(correct=correct).pivot(index="trial_id", columns="image_id", values="correct")
    absent = [t for t in scored["trial_id"] if t not in table.index]
    if absent:
        raise InputError(f"predictions.parquet has no {split!r} predictions for trial {absent[0]!r}")
    table = table.loc[scored["trial_id"]]
    if table.isna().any().any():
        raise InputError(f"predictions.parquet: trials in split {split!r} were not scored on the same images")
    _check_against_table(table, scored, accuracy, n_column)
    return table


def _check_against_table(table, scored, accuracy: str, n_column: str) -> None:
    n = table.shape[1]
    table_acc = scored.set_index("trial_id")[accuracy].astype(float)
    off = (table.mean(axis=1) - table_acc.loc[table.index]).abs() > 0.5 / n + 1e-9
    if off.any():
        trial = off[off].index[0]
        raise InputError(f"predictions.parquet does not match trials.csv: trial {trial!r} has "
                         f"{table.loc[trial].mean():.4f} correct in predictions but {accuracy} "
                         f"{table_acc.loc[trial]:.4f}")
    counts = scored.set_index("trial_id")[n_column]
    wrong_n = counts.notna() & (counts.astype(float) != n)
    if wrong_n.any():
        trial = wrong_n[wrong_n].index[0]
        raise InputError(f"predictions.parquet does not match trials.csv: trial {trial!r} has {n} images in "
                         f"predictions but {n_column} {counts.loc[trial]:.0f}")
