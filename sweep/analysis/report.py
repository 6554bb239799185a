"""Build pareto.csv, the plots and report.md of a results folder from its tables alone (trials.csv + manifest.json)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from sweep.analysis.fits import FORM_WORDS, describe, head_fractions, scaling_fits
from sweep.analysis.html import build_html
from sweep.analysis.plots import plot_accuracy_vs
from sweep.analysis.tables import config_table, pareto_front
from sweep.configs.naming import is_seed_fusion
from sweep.configs.seed_paper import PAPER_IMAGE_SIZE
from sweep.files import write_json_atomic, write_text_atomic
from sweep.tune.results import read_manifest, read_trials

SIZES = ("params", "flops", "latency_ms")


def _fmt(value, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


def _is_paper_data(manifest: dict) -> bool:
    data = (manifest.get("sweep_config") or {}).get("train", {}).get("data", {})
    return (data.get("source") == "radiography" and int(data.get("image_size") or 0) == PAPER_IMAGE_SIZE
            and not data.get("subset"))


def _reference_size(configs, column: str) -> float | None:
    """`column` (a size) of the seed's fusion when the sweep trained it: where the halving effect is read."""
    seed = configs[configs.apply(is_seed_fusion, axis=1)] if len(configs) else configs
    return float(seed[column].iloc[0]) if len(seed) and column in seed and seed[column].notna().all() else None


def build_report(results_dir: str | Path, *, bootstrap: int = 200) -> dict[str, Path]:
    """Write pareto.csv, plots/accuracy_vs_{params,flops,latency}.png, scaling.json, report.md and report.html
    into results_dir."""
    results_dir = Path(results_dir)
    trials = read_trials(results_dir)
    manifest = read_manifest(results_dir)
    configs = config_table(trials)
    pareto = pareto_front(configs) if len(configs) else configs
    written = {"pareto": write_text_atomic(results_dir / "pareto.csv", _pareto_csv(pareto, trials))}
    show_paper = _is_paper_data(manifest)
    for size in SIZES:
        if len(configs) and configs[size].notna().any():
            written[f"plot_{size}"] = plot_accuracy_vs(
                configs, pareto, size, results_dir / "plots" / f"accuracy_vs_{size.split('_')[0]}.png",
                show_paper=show_paper, title=f"{manifest.get('name', results_dir.name)}: test accuracy vs {size}")
    fits = {size: scaling_fits(trials, size=size, reference_size=_reference_size(configs, size), bootstrap=bootstrap)
            for size in ("params", "flops")}
    written["scaling"] = write_json_atomic(results_dir / "scaling.json", fits)
    text = render(results_dir, trials, configs, pareto, fits, manifest)
    written["report"] = write_text_atomic(results_dir / "report.md", text)
    written["html"] = build_html(results_dir)
    return written


def _pareto_csv(pareto, trials) -> str:
    """pareto.csv: one row per front configuration, naming its trials (the first one as trial_id, for explain)."""
    if not len(pareto):
        return "trial_id,label,params,test_accuracy_mean\n"
    rows = []
    for _, row in pareto.iterrows():
        match = trials[(trials["model"] == row["model"]) & trials["test_accuracy"].notna()]
        for key in ("cnn_cut", "resnet_cut", "branch_width", "head_width"):
            value = row[key]
            match = match[match[key].isna()] if value is None or (isinstance(value, float) and math.isnan(value)) \
                else match[match[key] == value]
        ids = match.sort_values("seed")["trial_id"].tolist()
        rows.append({"trial_id": ids[0] if ids else "", "trial_ids": " ".join(ids), **row.to_dict()})
    return pd.DataFrame(rows).to_csv(index=False)


def _config_rows(configs) -> list[str]:
    lines = ["| configuration | params | MFLOPs | latency ms | seeds | test acc (mean ± sd) | balanced acc | AUC |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    for _, r in configs.sort_values("params").iterrows():
        lines.append(f"| {r['label']} | {_fmt(r['params'], ',.0f')} | {_fmt(r['flops'] / 1e6 if r['flops'] == r['flops'] else None, ',.1f')} "
                     f"| {_fmt(r['latency_ms'], '.2f')} | {r['seeds']} | {_fmt(r['test_accuracy_mean'])} ± "
                     f"{_fmt(r['test_accuracy_std'])} | {_fmt(r.get('test_balanced_accuracy_mean'))} "
                     f"| {_fmt(r.get('test_auc_mean'))} |")
    return lines


def _head_section(manifest: dict) -> list[str]:
    data = (manifest.get("sweep_config") or {}).get("train", {}).get("data", {})
    size = int(data.get("image_size") or 256)
    classes = len(data.get("classes") or (0, 0)) or 2
    lines = ["| parent | image size | params | backbone | Flatten/Dense head | head share |", "|---|---:|---:|---:|---:|---:|"]
    for px in sorted({size, 256}):
        try:
            fractions = head_fractions(px, 3, classes)
        except ValueError:  # too small an image for a whole parent
            continue
        for model, v in fractions.items():
            lines.append(f"| {model} | {px} | {v['params']:,} | {v['backbone']:,} | {v['head']:,} | {v['head_fraction']:.1%} |")
    return lines


def no_test_metrics_line(trials) -> str:
    """One line for a table in which no row has test metrics, saying why (the rows' train_status)."""
    states = trials["train_status"].fillna("unknown").value_counts() if "train_status" in trials else {}
    why = ", ".join(f"{count} {state.replace('_', ' ')}" for state, count in states.items()) or "no rows"
    return f"**No row has test metrics** ({why}): nothing below is measured on the test split."


def render(results_dir: Path, trials, configs, pareto, fits: dict, manifest: dict) -> str:
    config = manifest.get("sweep_config") or {}
    data = config.get("train", {}).get("data", {})
    done = trials["test_accuracy"].notna().sum()
    lines = [f"# Sweep report: {config.get('name', results_dir.name)}", ""]
    lines += [f"- Data: {data.get('source', '?')} at {data.get('image_size', '?')} px"
              + (f" from `{data.get('data_dir')}`" if data.get("data_dir") else "")
              + f", classes {', '.join(data.get('classes') or [])}; fingerprint `{manifest.get('data_fingerprint')}`",
              f"- Trials: {len(trials)} ({done} with test metrics; statuses: "
              + ", ".join(f"{k} {v}" for k, v in trials["status"].value_counts().items()) + ")",
              *([f"- {no_test_metrics_line(trials)}"] if not done else []),
              f"- Epochs per trial: {config.get('train', {}).get('epochs', '?')}, seeds: {config.get('seeds', '?')}, "
              f"search: {config.get('search', '?')}, scheduler: {config.get('scheduler', '?')}",
              f"- Made by: `{' '.join(manifest.get('command') or ['?'])}` at {manifest.get('created_utc', '?')}"
              + (f" in {manifest['wall_seconds']:.0f} s" if manifest.get("wall_seconds") else "")
              + f", commit `{manifest.get('git_commit')}`", ""]
    if len(configs):
        spread = configs["test_accuracy_mean"].max() - configs["test_accuracy_mean"].min()
        lines += ["## Accuracy against size", "",
                  f"Test accuracy spans {spread * 100:.1f} points across {len(configs)} configurations "
                  f"(best {configs['test_accuracy_mean'].max():.3f}).", "",
                  "![accuracy vs params](plots/accuracy_vs_params.png)", "",
                  "![accuracy vs FLOPs](plots/accuracy_vs_flops.png)", "",
                  "![accuracy vs latency](plots/accuracy_vs_latency.png)", "", "### Configurations", ""]
        lines += _config_rows(configs) + ["", "### Pareto front (params vs mean test accuracy)", ""]
        lines += _config_rows(pareto) + [""]
    lines += ["## The scaling question", "",
              "The seed asked whether a little more or less of either parent changes accuracy, and warned that the "
              "change need not be linear. Test error (1 - accuracy) is fitted against size in three forms, compared "
              "by AIC and leave-one-configuration-out error; intervals come from resampling seeds within "
              "configurations.", "", "### Against parameters", "", describe(fits["params"], "parameters"), "",
              "### Against FLOPs", "", describe(fits["flops"], "FLOPs"), "",
              "### Where the parents' parameters sit", "",
              "The parents' sizes are dominated by their Flatten/Dense heads rather than the convolutional "
              "backbones, so 'size' largely measures the head (counted from the models' layer graphs):", ""]
    lines += _head_section(manifest) + [""]
    section = results_dir / "explanations" / "section.md"
    if section.is_file():
        lines += [section.read_text().rstrip(), ""]
    lines += ["## Files", "", "`trials.csv` / `trials.parquet` (one row per trial), `pareto.csv`, `scaling.json` (all fit "
              "numbers), `plots/`, `manifest.json` (config, versions, commit, data fingerprint, hardware).", ""]
    return "\n".join(lines)


def summary_table(results_dir: str | Path, limit: int = 20) -> str:
    """A plain-text table of configurations for the terminal."""
    configs = config_table(read_trials(results_dir)).sort_values("test_accuracy_mean", ascending=False)
    lines = [f"{'configuration':<48} {'params':>12} {'test acc':>9} {'seeds':>5}"]
    for _, r in configs.head(limit).iterrows():
        lines.append(f"{r['label'][:48]:<48} {_fmt(r['params'], ',.0f'):>12} {_fmt(r['test_accuracy_mean']):>9} {r['seeds']:>5}")
    return "\n".join(lines)


def scaling_headline(results_dir: str | Path) -> str:
    path = Path(results_dir) / "scaling.json"
    if not path.is_file():
        return ""
    fits = json.loads(path.read_text())["params"]
    if "note" in fits:
        return fits["note"]
    best = fits["best_by_aic"]
    return (f"scaling vs params: best fit {FORM_WORDS[best]}; linear {fits['linear_verdict']}; "
            f"halving size near the seed's fusion: {fits['forms'][best]['halving_accuracy_change'] * 100:+.2f} accuracy points")
