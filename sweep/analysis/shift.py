"""Accuracy under shift, from the tables: each configuration's in-source vs external gap with a 90% interval, and
accuracy per (source, class) of the test images.

A gap is a configuration's mean accuracy over its seeds on an external set minus the same on the in-source test
split. The two sets share no images, so its interval resamples patients within each set (the same draw for every
seed, since the seeds score the same images; each image its own patient where predictions.parquet names none)
and seeds (runs) of the configuration, from predictions.parquet.
Collapsed trials and trials without the split's metric are left out and counted.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

from sweep.analysis import clusters
from sweep.analysis.inputs import patients_of
from sweep.analysis.tables import by_configuration
from sweep.configs.naming import CONFIG_KEYS, config_label

LEVEL = 0.9
N_BOOT = 2000
COLLAPSE_SHARE = 0.98  # the contract: one class takes more than this share of a trial's test predictions


def external_names(trials) -> list[str]:
    """NAME of every external set with an `ext_<NAME>_accuracy` column (not `..._balanced_accuracy`)."""
    names = [c[len("ext_"):-len("_accuracy")] for c in trials.columns if c.startswith("ext_") and c.endswith("_accuracy")]
    return [n for n in names if not (n.endswith("_balanced") and n[:-len("_balanced")] in names)]


def counterfactual_names(trials) -> list[str]:
    return [c[len("cf_"):-len("_accuracy")] for c in trials.columns
            if c.startswith("cf_") and c.endswith("_accuracy") and not c.endswith("_source_accuracy")]


def collapsed(trials, predictions=None) -> pd.Series:
    """Per row, whether one class takes more than 98% of its test predictions: the table's `collapsed` column, else
    the test predictions, else (two classes) the per-class recalls and supports; False where none says."""
    if "collapsed" in trials:
        return trials["collapsed"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0", "yes"))
    if predictions is not None and len(predictions) and (predictions["split"] == "test").any():
        test = predictions[predictions["split"] == "test"]
        counts = test.groupby([test["trial_id"].astype(str), test["pred"].astype(str)]).size()
        top = counts.groupby(level=0).max() / counts.groupby(level=0).sum()
        return trials["trial_id"].astype(str).map(top).fillna(0.0) > COLLAPSE_SHARE
    classes = [c[len("recall_"):] for c in trials.columns if c.startswith("recall_")]
    if len(classes) == 2 and all(f"test_support_{c}" in trials for c in classes):
        (a, b), f = classes, lambda column: trials[column].astype(float)
        to_a = f(f"recall_{a}") * f(f"test_support_{a}") + (1 - f(f"recall_{b}")) * f(f"test_support_{b}")
        share = to_a / (f(f"test_support_{a}") + f(f"test_support_{b}"))
        return (np.maximum(share, 1 - share) > COLLAPSE_SHARE).fillna(False)
    return pd.Series(False, index=trials.index)


def correctness(predictions, split: str, trial_ids) -> pd.DataFrame | None:
    """trial_id x image_id table of 1.0 (right) / 0.0 (wrong) on `split` for the given trials; None if any is absent."""
    if predictions is None or not len(trial_ids):
        return None
    part = predictions[(predictions["split"] == split) & predictions["trial_id"].astype(str).isin(trial_ids)]
    if part.empty:
        return None
    right = (part["pred"].astype(str) == part["label"].astype(str)).astype(float)
    table = part.assign(right=right, trial_id=part["trial_id"].astype(str)).pivot_table(
        index="trial_id", columns="image_id", values="right", aggfunc="first")
    if set(table.index) != set(trial_ids) or table.isna().any().any():
        return None
    return table.loc[list(trial_ids)]


def _image_means(matrix: np.ndarray, rng, n_boot: int, codes=None) -> np.ndarray:
    """(B, S) per-seed means of `matrix` (S seeds x N images) over B resamples of its patients (shared by the
    seeds); codes: patient code per image (clusters.patient_codes), None for one patient per image."""
    codes = np.arange(matrix.shape[1]) if codes is None else np.asarray(codes)
    return clusters.weighted_means(matrix, clusters.bootstrap_weights(codes, n_boot, rng))


def patient_codes(predictions, split: str, image_ids) -> np.ndarray:
    """Patient code per image of a split (predictions.parquet's patient_id; each image its own without it)."""
    return clusters.patient_codes(image_ids, patients_of(predictions, split))


def _interval(values: np.ndarray) -> tuple[float, float]:
    tail = (1 - LEVEL) / 2
    lo, hi = np.quantile(values, [tail, 1 - tail])
    return float(lo), float(hi)


def gap_interval(test: np.ndarray, external: np.ndarray, *, seed: int = 0, n_boot: int = N_BOOT,
                 test_codes=None, external_codes=None) -> tuple[float, float]:
    """90% percentile interval of mean_seeds(external accuracy) - mean_seeds(test accuracy).

    test: (S, Nt) and external: (S, Ne) 0/1 correctness of the same S seeds; *_codes: patient per image (None: one
    each). Each replicate draws patients with replacement within each set (one draw shared by all seeds) and
    seeds with replacement."""
    rng = np.random.default_rng(seed)
    acc_t, acc_e = _image_means(test, rng, n_boot, test_codes), _image_means(external, rng, n_boot, external_codes)
    seeds = rng.integers(test.shape[0], size=(n_boot, test.shape[0]))
    return _interval(np.take_along_axis(acc_e, seeds, 1).mean(1) - np.take_along_axis(acc_t, seeds, 1).mean(1))


def paired_interval(difference: np.ndarray, *, seed: int = 0, n_boot: int = N_BOOT, codes=None) -> tuple[float, float]:
    """90% interval of the mean over seeds and images of a per-image paired difference (S seeds x N images):
    patients resampled (one draw for all seeds; codes: patient per image, None: one each), then seeds."""
    rng = np.random.default_rng(seed)
    means = _image_means(difference, rng, n_boot, codes)
    seeds = rng.integers(difference.shape[0], size=(n_boot, difference.shape[0]))
    return _interval(np.take_along_axis(means, seeds, 1).mean(1))


def _counted(group, column: str, flags) -> pd.DataFrame:
    """The rows of a configuration that count for `column`: a value present, not collapsed, not errored."""
    ok = group[column].notna() & ~flags.loc[group.index]
    if "status" in group:
        ok &= group["status"].astype(str).str.upper() != "ERROR"
    return group[ok]


def _configurations(trials, predictions, column: str):
    """Each configuration with test metrics: (its first row, its label, the rows that count for `column`, how many
    of its rows collapsed)."""
    flags = collapsed(trials, predictions)
    for group in by_configuration(trials[trials["test_accuracy"].notna()]):
        first = group.iloc[0]
        config = {k: (None if pd.isna(first[k]) else first[k]) for k in CONFIG_KEYS}
        yield first, config_label(config), _counted(group, column, flags), int(flags.loc[group.index].sum())


def gaps(trials, predictions, name: str) -> list[dict]:
    """One entry per configuration: in-source and external mean accuracy, their gap and its 90% interval."""
    column = f"ext_{name}_accuracy"
    out = []
    for first, label, used, n_collapsed in _configurations(trials, predictions, column):
        entry = {"config": label, "seeds": int(len(used)), "collapsed": n_collapsed,
                 "params": _float(first.get("params")), "flops": _float(first.get("flops"))}
        if used.empty:
            out.append({**entry, "in_source": None, "external": None, "gap": None, "lo": None, "hi": None})
            continue
        in_source, external = float(used["test_accuracy"].mean()), float(used[column].mean())
        ids = used["trial_id"].astype(str).tolist()
        test_right, ext_right = correctness(predictions, "test", ids), correctness(predictions, f"ext:{name}", ids)
        lo = hi = None
        if test_right is not None and ext_right is not None:
            lo, hi = gap_interval(test_right.to_numpy(), ext_right.to_numpy(),
                                  test_codes=patient_codes(predictions, "test", test_right.columns),
                                  external_codes=patient_codes(predictions, f"ext:{name}", ext_right.columns))
        entry.update(in_source=in_source, external=external, gap=external - in_source, lo=lo, hi=hi)
        for metric in ("balanced_accuracy", "auc"):
            if f"ext_{name}_{metric}" in used and f"test_{metric}" in used:
                entry[f"in_source_{metric}"] = _float(used[f"test_{metric}"].mean())
                entry[f"external_{metric}"] = _float(used[f"ext_{name}_{metric}"].mean())
        out.append(entry)
    return out


def reliance(trials, predictions, name: str) -> list[dict]:
    """Per configuration, for counterfactual set NAME (copies of test images with one cue removed): accuracy on
    the originals, on the copies, and their difference (the shortcut reliance) with a 90% interval that pairs
    each copy with its original (images resampled, then seeds)."""
    column, originals = f"cf_{name}_accuracy", f"cf_{name}_source_accuracy"
    out = []
    for _first, label, used, _n_collapsed in _configurations(trials, predictions, column):
        entry = {"config": label, "seeds": int(len(used)), "n": None, "originals": None,
                 "copies": None, "reliance": None, "lo": None, "hi": None}
        if len(used):
            entry.update(n=_float(used.get(f"cf_{name}_n", pd.Series(dtype=float)).max()),
                         copies=float(used[column].mean()),
                         originals=_float(used[originals].mean()) if originals in used else None)
            if entry["originals"] is not None:
                entry["reliance"] = entry["originals"] - entry["copies"]
            ids = used["trial_id"].astype(str).tolist()
            copies = correctness(predictions, f"cf:{name}", ids)
            test = correctness(predictions, "test", ids)
            if copies is not None and test is not None and set(copies.columns) <= set(test.columns):
                entry["lo"], entry["hi"] = paired_interval(test[copies.columns].to_numpy() - copies.to_numpy(),
                                                           codes=patient_codes(predictions, "test", copies.columns))
        out.append(entry)
    return out


def verdict(entry: dict) -> str:
    """'keeps' (interval reaches 0 or above), 'loses' (interval wholly below 0), or 'unknown'."""
    if entry.get("gap") is None:
        return "unknown"
    hi = entry.get("hi")
    if hi is None:
        return "loses" if entry["gap"] < 0 else "keeps"
    return "keeps" if hi >= 0 else "loses"


def per_source(trials, predictions, sources: Mapping[str, str], classes=None) -> tuple[list[dict], list[dict]]:
    """Accuracy on the test images per (source, class): over all counted trials, and per configuration.

    sources: image_id -> source name (from metadata.csv, or the synthetic generator's site). Returns (rows,
    rows by configuration); a row's accuracy is the mean over trials of the share of its cell's images right."""
    if predictions is None or not sources:
        return [], []
    flags = collapsed(trials, predictions)
    counted = trials[trials["test_accuracy"].notna() & ~flags]
    test = predictions[(predictions["split"] == "test")
                       & predictions["trial_id"].astype(str).isin(counted["trial_id"].astype(str))]
    if test.empty:
        return [], []
    test = test.assign(source=test["image_id"].astype(str).map(sources).fillna("(unknown)"),
                       right=(test["pred"].astype(str) == test["label"].astype(str)).astype(float),
                       trial_id=test["trial_id"].astype(str))
    labels = counted.assign(trial_id=counted["trial_id"].astype(str)).set_index("trial_id")
    test = test.assign(config=test["trial_id"].map(lambda t: config_label(labels.loc[t])))
    overall = _cells(test, ["source", "label"])
    by_config = _cells(test, ["config", "source", "label"])
    return overall, by_config


def _cells(test, keys: list[str]) -> list[dict]:
    per_trial = test.groupby(keys + ["trial_id"])["right"].agg(["mean", "size"]).reset_index()
    rows = []
    for key, cell in per_trial.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(["class" if k == "label" else k for k in keys], key))
        row.update(n=int(cell["size"].iloc[0]), accuracy=float(cell["mean"].mean()), trials=int(len(cell)),
                   min=float(cell["mean"].min()), max=float(cell["mean"].max()))
        rows.append(row)
    return rows


def entanglement(labels: list[str], sources: list[str]) -> dict:
    """How class and source go together in a dataset: counts per (source, class) and Cramér's V (0: independent,
    1: the source names the class)."""
    table = pd.crosstab(pd.Series(sources, name="source"), pd.Series(labels, name="class"))
    counts = [{"source": s, "class": c, "n": int(table.loc[s, c])} for s in table.index for c in table.columns]
    n = table.to_numpy().sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / max(n, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = float(np.nansum((table.to_numpy() - expected) ** 2 / expected))
    k = min(table.shape) - 1
    v = math.sqrt(chi2 / (n * k)) if n and k > 0 else float("nan")
    return {"counts": counts, "cramers_v": v}


def _float(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
