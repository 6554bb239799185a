"""Build scaling.json, pareto.csv, the plots and report.md of a results folder from its tables alone."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from sweep.analysis import verdict_md
from sweep.analysis.answer import analyze, label_family
from sweep.analysis.effects_report import effects_outputs
from sweep.analysis.html import build_html
from sweep.analysis.html.points import baselines
from sweep.analysis.init_text import starting_weights
from sweep.analysis.inputs import InputError, collapsed_flags, read_predictions, stopped_by_scheduler
from sweep.analysis.parents import head_fractions
from sweep.analysis.plots import plot_accuracy_vs
from sweep.analysis.shift_report import shift_outputs
from sweep.analysis.tables import config_table, pareto_front
from sweep.configs.naming import config_label
from sweep.configs.seed_paper import PAPER_IMAGE_SIZE
from sweep.files import write_json_atomic, write_text_atomic
from sweep.tune.results import read_manifest, read_trials

SIZES = ("params", "flops", "latency_ms")
AXIS_TITLES = {"params": "parameters", "flops": "FLOPs", "latency_ms": "latency"}
PRIMARY_LINE = ("The primary analysis is test accuracy against parameters; the other size axes (FLOPs, latency) "
                "and external splits are secondary, each with a Holm-adjusted p over the secondary analyses "
                "(below).")
STAR_PRIMARY_LINE = ("This sweep is a star design (`run --around`): its primary analysis is the partial effects above; "
                     "test accuracy against parameters, the other size axes and the external splits are secondary "
                     "(Holm-adjusted p over the secondary analyses below).")


def _fmt(value, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


def _is_paper_data(manifest: dict) -> bool:
    data = (manifest.get("sweep_config") or {}).get("train", {}).get("data", {})
    return (data.get("source") == "radiography" and int(data.get("image_size") or 0) == PAPER_IMAGE_SIZE
            and not data.get("subset"))


def scaling_objects(trials, predictions, *, n_boot: int) -> tuple[dict, str | None]:
    """({split: {size axis: analyze object}}, why there is none) for the test split and every external set."""
    splits = ["test"] + [f"ext:{c[4:-9]}" for c in trials.columns
                         if c.startswith("ext_") and c.endswith("_accuracy") and f"{c[:-9]}_n" in trials]
    out: dict = {}
    for split in splits:
        for size in SIZES:
            if size not in trials or not (pd.to_numeric(trials[size], errors="coerce") > 0).any():
                continue
            try:
                out.setdefault(split, {})[size] = analyze(trials, predictions, size=size, split=split, n_boot=n_boot)
            except InputError as err:
                if split == "test":
                    return {}, str(err)
    return label_family(out), None


def build_report(results_dir: str | Path, *, bootstrap: int = 1000) -> dict[str, Path]:
    """Write scaling.json, pareto.csv, plots/accuracy_vs_{params,flops,latency}.png, report.md and report.html
    into results_dir, from trials.csv (+ predictions.parquet and manifest.json when present)."""
    results_dir = Path(results_dir)
    trials = read_trials(results_dir)
    predictions = read_predictions(results_dir)
    manifest = read_manifest(results_dir)
    scaling, why_none = scaling_objects(trials.astype({"trial_id": str}), predictions, n_boot=bootstrap)
    trials = with_collapsed(trials, predictions)
    counted = trials[~trials["collapsed"] & ~stopped_by_scheduler(trials)]  # as the fits count them
    configs = config_table(counted)
    pareto = pareto_front(configs) if len(configs) else configs
    written = {"scaling": write_json_atomic(results_dir / "scaling.json", scaling),
               "pareto": write_text_atomic(results_dir / "pareto.csv", _pareto_csv(pareto, counted))}
    for size in SIZES:
        if len(configs) and configs[size].notna().any():
            written[f"plot_{size}"] = plot_accuracy_vs(
                trials, size, results_dir / "plots" / f"accuracy_vs_{size.split('_')[0]}.png",
                result=scaling.get("test", {}).get(size), baselines=baselines(trials, _classes(trials)),
                show_paper=_is_paper_data(manifest),
                title=f"{manifest.get('name', results_dir.name)}: test accuracy vs {size}")
    under_shift = shift_outputs(results_dir, trials, manifest, scaling)
    effects_written, effects_lines = effects_outputs(results_dir, trials, predictions, manifest)
    written.update(effects_written)
    text = render(results_dir, trials, configs, scaling, manifest, why_none, under_shift, effects_lines)
    written["report"] = write_text_atomic(results_dir / "report.md", text)
    written["html"] = build_html(results_dir)
    return written


def with_collapsed(trials, predictions):
    """trials with `collapsed` (bool) and `label` columns, collapse decided as the analysis decides it."""
    flags, _ = collapsed_flags(trials.astype({"trial_id": str}), predictions)
    return trials.assign(collapsed=flags, label=[config_label(r) for r in trials.to_dict("records")])


def _classes(trials) -> list[str]:
    return sorted(c[len("recall_"):] for c in trials.columns if c.startswith("recall_"))


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


def rows_used_line(trials) -> str:
    """Which rows the figures and fits use: those with test metrics, by how they ended (stopped rows only when
    `--score-stopped` scored them, drawn apart on the plots)."""
    scored = trials[trials["test_accuracy"].notna()]
    states = scored["train_status"].fillna("unknown") if "train_status" in scored else None
    used = ", ".join(f"{count} {state.replace('_', ' ')}" for state, count in states.value_counts().items()) \
        if states is not None else str(len(scored))
    left, stopped = len(trials) - len(scored), int(stopped_by_scheduler(scored).sum())
    return (f"Rows used below: the {len(scored)} with test metrics ({used})"
            + (f"; the {stopped} stopped by the scheduler (scored at their rung, --score-stopped) are drawn as grey "
               "crosses and left out of the means and fits" if stopped else "")
            + (f"; {left} without test metrics are left out" if left else "") + ".")


def no_test_metrics_line(trials) -> str:
    """One line for a table in which no row has test metrics, saying why (the rows' train_status)."""
    states = trials["train_status"].fillna("unknown").value_counts() if "train_status" in trials else {}
    why = ", ".join(f"{count} {state.replace('_', ' ')}" for state, count in states.items()) or "no rows"
    return f"**No row has test metrics** ({why}): nothing below is measured on the test split."


def render(results_dir: Path, trials, configs, scaling: dict, manifest: dict, why_none: str | None,
           under_shift: list[str] | None = None, effects_lines: list[str] | None = None) -> str:
    """report.md: the answer first (verdict, the configurations not distinguishable from the best, collapsed
    trials), then the figures and tables, then the fits in detail. A star design (`run --around`) leads with its
    partial effects; elsewhere they follow the answer as a secondary analysis."""
    lines = [f"# Sweep report: {(manifest.get('sweep_config') or {}).get('name', results_dir.name)}", ""]
    lines += _provenance(trials, manifest) + [""]
    lead = bool(manifest.get("around"))
    lines += (effects_lines or []) if lead else []
    lines += ["## The answer" + (" about size (secondary for a star design)" if lead else ""), ""]
    main = scaling.get("test", {}).get("params")
    if main is None:
        lines += [f"No scaling analysis: {why_none or 'no trial has a size and test metrics'}.", ""]
    else:
        lines += [STAR_PRIMARY_LINE if lead else PRIMARY_LINE, "", f"**{main['verdict_text']}**", "",
                  "### Configurations not distinguishable from the best", ""]
        lines += verdict_md.best_table(main) + ["", "### Collapsed trials", ""]
        lines += verdict_md.collapsed_lines(main, trials) + [""]
    lines += [] if lead else (effects_lines or [])
    if len(configs):
        lines += ["## Accuracy against size", "",
                  "Each dot is one trial (hollow: collapsed); bars span a configuration's non-collapsed seeds; the "
                  "green band is the fitted curve with its 90% interval; dashed lines are chance and the "
                  "majority-class rate.", "",
                  "![accuracy vs params](plots/accuracy_vs_params.png)", "",
                  "![accuracy vs FLOPs](plots/accuracy_vs_flops.png)", "",
                  "![accuracy vs latency](plots/accuracy_vs_latency.png)", "",
                  "### Configurations (means over non-collapsed seeds)", ""]
        lines += _config_rows(configs) + [""]
    lines += _scaling_details(scaling)
    lines += ["### Where the parents' parameters sit", "",
              "The parents' sizes are dominated by their Flatten/Dense heads rather than the convolutional "
              "backbones, so 'size' largely measures the head (counted from the models' layer graphs):", ""]
    lines += _head_section(manifest) + [""]
    lines += under_shift or []
    section = results_dir / "explanations" / "section.md"
    if section.is_file():
        lines += [section.read_text().rstrip(), ""]
    lines += ["## Files", "", "`trials.csv` / `trials.parquet` (one row per trial), `predictions.parquet` (per test "
              "image, when written), `scaling.json` (the analyze object per split and size axis), `pareto.csv` "
              "(configurations on the size/accuracy front, by mean; explanations pick trials from it), `plots/`, "
              "`report.html`, `manifest.json` (config, versions, commit, data fingerprint, hardware).", ""]
    return "\n".join(lines)


def _provenance(trials, manifest: dict) -> list[str]:
    config = manifest.get("sweep_config") or {}
    data = config.get("train", {}).get("data", {})
    done = trials["test_accuracy"].notna().sum() if "test_accuracy" in trials else 0
    statuses = trials["status"].value_counts().items() if "status" in trials else []
    return [f"- Data: {data.get('source', '?')} at {data.get('image_size', '?')} px"
            + (f" from `{data.get('data_dir')}`" if data.get("data_dir") else "")
            + f", classes {', '.join(data.get('classes') or [])}; fingerprint `{manifest.get('data_fingerprint')}`",
            f"- Trials: {len(trials)} ({done} with test metrics, {int(trials['collapsed'].sum())} collapsed; "
            f"statuses: " + ", ".join(f"{k} {v}" for k, v in statuses) + ")",
            *([f"- {no_test_metrics_line(trials)}"] if not done else [f"- {rows_used_line(trials)}"]),
            f"- {starting_weights(manifest)}",
            f"- Epochs per trial: {config.get('train', {}).get('epochs', '?')}, seeds: {config.get('seeds', '?')}, "
            f"search: {config.get('search', '?')}, scheduler: {config.get('scheduler', '?')}",
            f"- Made by: `{' '.join(manifest.get('command') or ['?'])}` at {manifest.get('created_utc', '?')}"
            + (f" in {manifest['wall_seconds']:.0f} s" if manifest.get("wall_seconds") else "")
            + f", commit `{manifest.get('git_commit')}`"]


def _scaling_details(scaling: dict) -> list[str]:
    """Per split and size axis: the verdict sentence and the forms table."""
    if not scaling:
        return []
    lines = ["## The scaling question in detail", "",
             "The seed asked whether a little more or less of either parent changes accuracy, and warned that the "
             "change need not be linear.", ""] + verdict_md.method_lines() + [""]
    for split, axes in scaling.items():
        for size, result in axes.items():
            where = "" if split == "test" else f" on {split}"
            said = ("The primary analysis: its verdict is the answer at the top of this report." if result.get("primary")
                    else result["verdict_text"])   # the primary sentence is said once, in the answer
            role = "primary" if result.get("primary") else "secondary"
            lines += [f"### Against {AXIS_TITLES[size]}{where} ({role})", "", said, ""]
            lines += verdict_md.forms_table(result) + [""]
    return lines


def summary_table(results_dir: str | Path, limit: int = 20) -> str:
    """A plain-text table of configurations for the terminal (means over non-collapsed seeds)."""
    trials = with_collapsed(read_trials(results_dir), read_predictions(results_dir))
    configs = config_table(trials[~trials["collapsed"] & ~stopped_by_scheduler(trials)]).sort_values(
        "test_accuracy_mean", ascending=False)
    lines = [f"{'configuration':<48} {'params':>12} {'test acc':>9} {'seeds':>5}"]
    for _, r in configs.head(limit).iterrows():
        lines.append(f"{r['label'][:48]:<48} {_fmt(r['params'], ',.0f'):>12} {_fmt(r['test_accuracy_mean']):>9} {r['seeds']:>5}")
    return "\n".join(lines)


def scaling_headline(results_dir: str | Path) -> str:
    """The verdict sentence of test accuracy against parameters, from scaling.json ('' when there is none)."""
    path = Path(results_dir) / "scaling.json"
    if not path.is_file():
        return ""
    result = (json.loads(path.read_text()).get("test") or {}).get("params")
    return result["verdict_text"] if result else "no scaling verdict (see report.md)"
