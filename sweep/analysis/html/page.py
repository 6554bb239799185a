"""Assemble report.html: Bokeh figures with BokehJS inlined (no network), static tables, and the JSON that
report.js turns into the trials table and the explanation browser. Each section says so when its file is absent."""
from __future__ import annotations

import html
import json
from pathlib import Path

from bokeh.embed import file_html
from bokeh.layouts import column
from bokeh.models import CustomJS, Div, RadioButtonGroup
from bokeh.resources import INLINE
from jinja2 import Template

from sweep.analysis.effects_report import html_section as effects_html
from sweep.analysis.html.contract import ReportTables, load_tables
from sweep.analysis.init_text import starting_weights
from sweep.analysis.html.explain_browser import browser_data, model_table
from sweep.analysis.html.points import SIZE_AXES, baselines, config_means, row_label, seed_points
from sweep.analysis.html.shift_plot import shift_figure
from sweep.analysis.html.size_plot import EMPTY_BAND, band_data, size_figure, verdict_sentence
from sweep.analysis.html.static_tables import html_table, shift_tables
from sweep.analysis.html.trials_table import table_data
from sweep.files import write_text_atomic

HERE = Path(__file__).parent
SWITCH_LABELS = {"params": "params", "flops": "FLOPs", "latency_ms": "latency"}
FILES = ("report.md", "effects.json", "trials.csv", "trials.parquet", "predictions.parquet", "pareto.csv", "scaling.json",
         "shift.json", "manifest.json", "explanations/summary.csv", "explanations/models.csv")
# the size switch: every switched source takes its x from the chosen size column; band and verdict follow
SWITCH_JS = """
const size = sizes[cb_obj.active];
for (const source of switched) {
  source.data = Object.assign({}, source.data, {x: source.data[size]});
}
band.data = curves[size];
for (const axis of axes) { axis.axis_label = words[size] + " (log scale)"; }
verdict.text = verdicts[size];
"""


def build_html(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write RESULTS/report.html (or `out`) from the folder's tables; FileNotFoundError if it has no trials table."""
    tables = load_tables(results_dir)
    points = seed_points(tables.trials, ["test"] + [f"ext:{n}" for n in tables.external_sets])
    roots, variables = [], {"notes": [html.escape(n) for n in tables.notes]}
    if len(points):
        panel, switch, switched, axes, band, curves, verdict, verdicts = size_panel(tables, points)
        roots.append(panel)
        shift_fig, shift_sources = shift_figure(points, tables.external_sets)
        if shift_fig is not None:
            roots.append(shift_fig)
            switched += list(shift_sources.values())
            axes += list(shift_fig.xaxis)
        switch.js_on_change("active", CustomJS(
            args=dict(sizes=list(SIZE_AXES), switched=switched, band=band, curves=curves, axes=axes,
                      words=SIZE_AXES, verdict=verdict, verdicts=verdicts), code=SWITCH_JS))
    names = {str(r["trial_id"]): f"{row_label(r.to_dict())} · seed {_seed(r.get('seed'))}"
             for _, r in tables.trials.iterrows()}
    payload = {"trials": table_data(tables.trials, tables.external_sets, tables.counterfactual_sets)}
    variables.update(explanation_section(tables, names, payload))
    variables["effects_html"] = effects_html(tables.results_dir)
    variables.update(
        has_size=bool(len(points)), has_shift=any(r.name == "shift_figure" for r in roots),
        shift_notes=[] if tables.external_sets else
        ["No external sets in this sweep (`fusion-sweep run --external NAME=DIR` adds them)."],
        shift_tables=shift_tables(tables.shift, tables.scaling), heading=html.escape(heading(tables)),
        facts=[html.escape(f) for f in facts(tables)], files=files_present(tables.results_dir),
        css=(HERE / "static" / "report.css").read_text(), report_js=(HERE / "static" / "report.js").read_text(),
        data_json=json.dumps(payload, allow_nan=False, separators=(",", ":")).replace("</", "<\\/"))
    if not roots:  # Bokeh renders a page only around at least one model; the template says there is nothing to plot
        roots.append(Div(text="", name="nothing_to_plot"))
    template = Template((HERE / "page.html.jinja").read_text())
    text = file_html(roots, resources=INLINE, title=heading(tables), template=template, template_variables=variables)
    return write_text_atomic(Path(out) if out else tables.results_dir / "report.html", text)


def size_panel(tables: ReportTables, points, split: str = "test"):
    """The size switch, the verdict sentence, the figure and its caption; plus what the switch rewrites."""
    curves = {s: band_data(tables.scaling, split, s) or EMPTY_BAND for s in SIZE_AXES}
    verdicts = {s: html.escape(verdict_sentence(tables.scaling, split, s)) for s in SIZE_AXES}
    fig, sources = size_figure(config_means(points, split), points, baselines(tables.trials, tables.classes),
                               curves["params"], tables.external_sets,
                               f"{tables.name}: in-source test accuracy against size",
                               has_band=any(curve["x"] for curve in curves.values()))
    switch = RadioButtonGroup(labels=[SWITCH_LABELS[s] for s in SIZE_AXES], active=0)
    verdict = Div(text=verdicts["params"], css_classes=["verdict"], sizing_mode="stretch_width",
                  styles={"background": "#f4f8f4", "border-left": "4px solid #27ae60", "padding": "6px 10px"})
    caption = Div(sizing_mode="stretch_width", text=(
        "Small marks: one seed each (hollow: collapsed, left out of means and fits). Large marks: a "
        "configuration's mean over its other seeds with a 90% interval (Student t on the logit scale, inside "
        "0-100; none for a single seed). Dashed: chance and the majority-class rate. Green: the fitted scaling "
        "curve with its interval (scaling.json). Hover a mark for its numbers; click a legend entry to hide it."))
    panel = column(Div(text="<b>size axis</b>"), switch, verdict, fig, caption, sizing_mode="stretch_width",
                   name="size_panel")
    switched = [sources["seeds"], sources["means"], sources["labels"]]
    return panel, switch, switched, list(fig.xaxis), sources["band"], curves, verdict, verdicts


def explanation_section(tables: ReportTables, names: dict[str, str], payload: dict) -> dict:
    """Template variables of the explanations section; adds the browser's data to `payload` when there is any."""
    summary = tables.explain_summary
    if summary is None or not len(summary):
        return {"explain_notes": ["No explanations in this folder (`fusion-sweep explain RESULTS` makes them)."],
                "explain_table": "", "overlay_key": False}
    payload["explanations"] = browser_data(summary, names, tables.results_dir / "explanations", tables.classes,
                                           tables.synthetic)
    notes = [] if tables.synthetic else ["Real X-rays: scores only. Maps, overlays and crops of real films never "
                                         "leave the machine, so none is shown."]
    if tables.synthetic and not any("src" in image for image in payload["explanations"]["images"]):
        notes.append("The explanations folder holds no images/ of the explained synthetic images (an older "
                     "`fusion-sweep explain` wrote it): scores only.")
    columns, rows = model_table(tables.explain_models, summary, names)
    return {"explain_notes": notes, "explain_table": html_table(columns, rows),
            "overlay_key": any("src" in image for image in payload["explanations"]["images"])}


def heading(tables: ReportTables) -> str:
    return f"Sweep report: {tables.name}"


def facts(tables: ReportTables) -> list[str]:
    data, trials, manifest = tables.data_spec, tables.trials, tables.manifest
    done = int(trials["test_accuracy"].notna().sum()) if "test_accuracy" in trials else 0
    lines = [f"Data: {data.get('source', '?')} at {data.get('image_size', '?')} px; classes "
             f"{', '.join(tables.classes) or '?'}",
             f"{len(trials)} rows (configuration x seed), {done} with test metrics", starting_weights(manifest)]
    if manifest.get("command"):
        lines.append(f"Made by `{' '.join(manifest['command'])}` at {manifest.get('created_utc', '?')}"
                     + (f", commit {manifest['git_commit']}" if manifest.get("git_commit") else ""))
    return lines


def files_present(results_dir: Path) -> str:
    present = [name for name in FILES if (results_dir / name).is_file()]
    return ", ".join(f'<a href="{html.escape(name)}">{html.escape(name)}</a>' for name in present)


def _seed(value) -> str:
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return "?"
