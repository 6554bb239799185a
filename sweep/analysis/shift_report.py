"""shift.json and report.md's "Under shift" section, rebuilt from a results folder's tables.

What needs the images (the confound probe, how class and source are entangled over the whole dataset) is measured
once by the sweep driver and kept from the shift.json already there; what the tables give (the gaps, the scaling
per external set, accuracy per source, shortcut reliance) is recomputed every time.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from data.metadata import image_sources
from sweep.analysis import shift
from sweep.analysis.confound import share_of_model_auc
from sweep.files import write_json_atomic

KEPT = ("confound_probe", "entanglement")  # measured on the images by the driver; a rebuild keeps them


def read_shift(results_dir: str | Path) -> dict:
    path = Path(results_dir) / "shift.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def sources_of(manifest: dict) -> dict[str, str]:
    """image_id -> source of the sweep's own data: metadata.csv's source column, or the synthetic sites."""
    data = ((manifest.get("sweep_config") or {}).get("train") or {}).get("data") or {}
    if data.get("source") == "radiography":
        return image_sources(data.get("data_dir")) if data.get("data_dir") else {}
    if data.get("source") == "synthetic" and data.get("sites"):
        from data.synthetic import sources_by_id

        return sources_by_id(data)
    return {}


def build_shift(results_dir: str | Path, trials, predictions, manifest: dict, scaling: dict | None = None) -> dict:
    """The shift.json object of a results folder (written there too) from its tables and the kept measurements."""
    results_dir = Path(results_dir)
    previous = read_shift(results_dir)
    eval_sets = manifest.get("eval_sets") or {}
    externals = {}
    for name in shift.external_names(trials):
        block = {"n_images": _n_images(trials, f"ext_{name}_n", eval_sets.get(f"ext:{name}")),
                 "classes": (eval_sets.get(f"ext:{name}") or {}).get("classes"),
                 "gap": shift.gaps(trials, predictions, name)}
        block["scaling"] = ((scaling or {}).get(f"ext:{name}") or {}).get("params")
        externals[name] = block
    counterfactuals = {name: {"n_images": _n_images(trials, f"cf_{name}_n", eval_sets.get(f"cf:{name}")),
                              "what": (eval_sets.get(f"cf:{name}") or {}).get("what"),
                              "reliance": shift.reliance(trials, predictions, name)}
                       for name in shift.counterfactual_names(trials)}
    sources = sources_of(manifest)
    per_source, by_config = shift.per_source(trials, predictions, sources)
    out = {"externals": externals, "counterfactuals": counterfactuals,
           "confound_probe": previous.get("confound_probe"), "entanglement": previous.get("entanglement"),
           "per_source": per_source or previous.get("per_source") or [],
           "per_source_by_config": by_config or previous.get("per_source_by_config") or [],
           "accuracy_units": "fraction correct (0-1)", "level": shift.LEVEL}
    write_json_atomic(results_dir / "shift.json", out)
    return out


def keep_measurements(results_dir: str | Path, **measured) -> None:
    """Store the driver's image-based measurements (confound_probe, entanglement) in shift.json for rebuilds."""
    current = read_shift(results_dir)
    current.update({k: v for k, v in measured.items() if k in KEPT})
    write_json_atomic(Path(results_dir) / "shift.json", current)


def _n_images(trials, column: str, recorded: dict | None) -> int | None:
    if recorded and recorded.get("n_images") is not None:
        return int(recorded["n_images"])
    if column in trials and trials[column].notna().any():
        return int(trials[column].max())
    return None


# ---------------------------------------------------------------- report.md

def _num(value, spec: str = ".3f") -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _interval(lo, hi, spec: str = "+.3f") -> str:
    return "" if lo is None or hi is None else f" [{_num(lo, spec)}, {_num(hi, spec)}]"


def section(shift_data: dict, trials, explain_models: pd.DataFrame | None = None,
            plot: str | None = None) -> list[str]:
    """report.md's "Under shift" lines (empty when there is nothing to say)."""
    body = []
    for name, block in (shift_data.get("externals") or {}).items():
        body += _external_lines(name, block)
    for name, block in (shift_data.get("counterfactuals") or {}).items():
        body += _counterfactual_lines(name, block, explain_models)
    body += _confound_lines(shift_data, trials)
    if not body:
        return []
    lines = ["## Under shift", "",
             "In-source accuracy is measured on held-out patients of the sources the models were trained on. A model "
             "that recognises the source instead of the disease keeps that accuracy in-source and loses it on "
             "images from elsewhere. Accuracies are fractions correct; intervals are 90%, resampling patients within "
             "each set and seeds."]
    if plot:
        lines += ["", f"![in-source and external accuracy against size]({plot})"]
    return lines + [""] + body


def _external_lines(name: str, block: dict) -> list[str]:
    classes = block.get("classes") or {}
    lines = [f"### External set `{name}` ({block.get('n_images') or '?'} images"
             + (": " + ", ".join(f"{c} {n}" for c, n in classes.items()) if classes else "") + ")", ""]
    if classes and sum(1 for n in classes.values() if n) == 1:
        only = next(c for c, n in classes.items() if n)
        lines += [f"Only class {only} is present: its accuracy is the recall of {only}; balanced accuracy and AUC "
                  "are undefined (NaN) on this set.", ""]
    lines += ["| configuration | seeds | in-source | external | gap (external − in-source) [90% interval] | |",
              "|---|---:|---:|---:|---|---|"]
    keeps, loses = [], []
    for g in block.get("gap") or []:
        word = shift.verdict(g)
        (keeps if word == "keeps" else loses if word == "loses" else []).append(g["config"])
        lines.append(f"| {g['config']} | {g.get('seeds', '')} | {_num(g.get('in_source'))} | {_num(g.get('external'))} "
                     f"| {_num(g.get('gap'), '+.3f')}{_interval(g.get('lo'), g.get('hi'))} | {word} |")
    lines += ["", f"Keep their accuracy (interval reaches 0): {', '.join(keeps) or 'none'}. "
              f"Lose it (interval wholly below 0): {', '.join(loses) or 'none'}."]
    verdict = (block.get("scaling") or {}).get("verdict_text")
    if verdict:
        lines += ["", f"Scaling on `ext:{name}`: {verdict}"]
    return lines + [""]


def _shap_marker(explain_models: pd.DataFrame | None, config: str) -> tuple[str, bool]:
    """The SHAP marker share (with interval) of the configuration's explained seeds, and whether one is flagged."""
    if explain_models is None or "marker_share" not in explain_models or "config" not in explain_models:
        return "", False
    rows = explain_models[explain_models["config"].astype(str) == config]
    if rows.empty:
        return "not explained", False
    texts = [f"{_num(r['marker_share'])}{_interval(r.get('marker_share_lo'), r.get('marker_share_hi'), '.3f')}"
             for _, r in rows.iterrows()]
    flagged = rows.get("flag", pd.Series(dtype=str)).fillna("").astype(str).str.contains("marker").any()
    return "; ".join(texts), bool(flagged)


def _counterfactual_lines(name: str, block: dict, explain_models) -> list[str]:
    lines = [f"### Counterfactual copies `{name}` ({block.get('n_images') or '?'} images"
             + (f": {block['what']}" if block.get("what") else "") + ")", "",
             "Shortcut reliance = accuracy on the original test images minus accuracy on their copies with the cue "
             "removed (the same images otherwise); above 0 means the cue carries some of the model's accuracy.", "",
             "| configuration | seeds | originals | copies | shortcut reliance [90% interval] | SHAP marker share "
             "[90% interval] | flagged by |", "|---|---:|---:|---:|---|---|---|"]
    for r in block.get("reliance") or []:
        shap_text, shap_flag = _shap_marker(explain_models, r["config"])
        by = [w for w, on in (("reliance", r.get("lo") is not None and r["lo"] > 0), ("SHAP", shap_flag)) if on]
        lines.append(f"| {r['config']} | {r.get('seeds', '')} | {_num(r.get('originals'))} | {_num(r.get('copies'))} "
                     f"| {_num(r.get('reliance'), '+.3f')}{_interval(r.get('lo'), r.get('hi'))} | {shap_text} "
                     f"| {', '.join(by)} |")
    return lines + [""]


def _confound_lines(shift_data: dict, trials) -> list[str]:
    lines = []
    probe = shift_data.get("confound_probe")
    if probe and probe.get("auc") is not None:
        best = trials["test_auc"].astype(float).max() if "test_auc" in trials else float("nan")
        share = share_of_model_auc(probe["auc"], best)
        n_features = f"{probe['n_features']} " if probe.get("n_features") else ""
        n_images = f"all {probe['n_images']} " if probe.get("n_images") else "all "
        lines += ["### The confound probe", "",
                  f"A {probe.get('model', 'small model')} on {n_features}image statistics that carry no anatomy, "
                  f"{probe.get('cv', 'cross-validated')} over {n_images}images of the dataset, predicts the label with "
                  f"AUC **{_num(probe['auc'])}**{_interval(probe.get('lo'), probe.get('hi'), '.3f')}. "
                  f"Features: {'; '.join(probe.get('features') or [])}."]
        if math.isfinite(best) and math.isfinite(share):
            lines += ["", f"The best model's test AUC is {best:.3f}: the probe already reaches {share:.0%} of its "
                      "lift over chance ((probe − 0.5) / (model − 0.5)) without looking at the chest."]
        lines += [""]
    entangled = shift_data.get("entanglement")
    if entangled and entangled.get("counts"):
        lines += ["### Class and source", "", "| source | class | images (whole dataset) |", "|---|---|---:|"]
        lines += [f"| {c['source']} | {c['class']} | {c['n']} |" for c in entangled["counts"]]
        lines += ["", f"Cramér's V between source and class: {_num(entangled.get('cramers_v'), '.2f')} "
                  "(0: independent; 1: the source names the class).", ""]
    if shift_data.get("per_source"):
        lines += ["Accuracy on the test images per (source, class), mean over the counted trials (range over trials):",
                  "", "| source | class | test images | accuracy | range |", "|---|---|---:|---:|---|"]
        lines += [f"| {r['source']} | {r['class']} | {r['n']} | {_num(r['accuracy'])} | "
                  f"{_num(r.get('min'))}–{_num(r.get('max'))} |" for r in shift_data["per_source"]]
        lines += [""] + _rare_cells(shift_data)
    return lines


def _rare_cells(shift_data: dict, at_most: int = 30) -> list[str]:
    """Per configuration, the accuracy on the small (source, class) cells: where a source shortcut shows first."""
    rare = {(r["source"], r["class"]) for r in shift_data.get("per_source") or [] if r["n"] <= at_most}
    rows = [r for r in shift_data.get("per_source_by_config") or [] if (r["source"], r["class"]) in rare]
    if not rows:
        return []
    lines = [f"Small cells (at most {at_most} test images), per configuration:", "",
             "| configuration | source | class | test images | accuracy (mean over seeds) |", "|---|---|---|---:|---:|"]
    lines += [f"| {r['config']} | {r['source']} | {r['class']} | {r['n']} | {_num(r['accuracy'])} |" for r in rows]
    return lines + [""]


def shift_outputs(results_dir: str | Path, trials, manifest: dict, scaling: dict | None = None) -> list[str]:
    """Write shift.json and plots/shift_vs_{params,flops}.png (when there are external or counterfactual sets);
    return report.md's "Under shift" lines."""
    from sweep.analysis.shift_plot import plot_shift

    results_dir = Path(results_dir)
    predictions_path = results_dir / "predictions.parquet"
    predictions = pd.read_parquet(predictions_path) if predictions_path.is_file() else None
    data = build_shift(results_dir, trials, predictions, manifest, scaling)
    externals, counterfactuals = shift.external_names(trials), shift.counterfactual_names(trials)
    plot = None
    if externals or counterfactuals:
        for size in ("params", "flops"):
            if size in trials and trials[size].notna().any():
                plot_shift(trials, size, results_dir / "plots" / f"shift_vs_{size}.png", externals=externals,
                           counterfactuals=counterfactuals, predictions=predictions)
        plot = "plots/shift_vs_params.png"
    models_path = results_dir / "explanations" / "models.csv"
    models = pd.read_csv(models_path) if models_path.is_file() else None
    return section(data, trials, models, plot)
