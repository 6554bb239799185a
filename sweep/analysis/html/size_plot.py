"""The interactive accuracy-versus-size figure: every seed a point, each configuration's mean with its interval,
collapsed rows hollow, chance and majority lines, the parents and the seed's fusion marked, the fitted scaling band."""
from __future__ import annotations

import math

import pandas as pd
from bokeh.models import ColumnDataSource, HoverTool, Label, Span
from bokeh.plotting import figure

from sweep.analysis.html.points import SIZE_AXES, acc_column

STYLE = {  # role -> (colour, marker)
    "fusion": ("#1f77b4", "circle"),
    "seed's fusion": ("#111111", "star"),
    "CNN parent": ("#e67e22", "square"),
    "ResNet50V2 parent": ("#c0392b", "diamond"),
}
EMPTY_BAND = {"x": [], "lo": [], "hi": [], "estimate": []}
BASELINE_WORDS = {"chance": "chance", "majority": "majority class"}


def styled(frame: pd.DataFrame, hollow_column: str) -> dict:
    """ColumnDataSource columns: the frame's, plus x (params first), colour, marker and fill alpha (0 = hollow)."""
    data = {c: frame[c].tolist() for c in frame.columns}
    data["x"] = frame["params"].tolist() if len(frame) else []
    data["colour"] = [STYLE[r][0] for r in frame["role"]]
    data["marker"] = [STYLE[r][1] for r in frame["role"]]
    data["fill"] = [0.0 if hollow else 0.75 for hollow in frame[hollow_column]]
    return data


def seed_tooltips(external: list[str]) -> list[tuple[str, str]]:
    tips = [("configuration", "@config"), ("seed", "@seed"), ("params", "@params{0,0}"),
            ("FLOPs", "@flops{0.00a}"), ("latency", "@latency_ms{0.000} ms"),
            ("in-source accuracy", f"@{acc_column('test')}{{0.0}}%")]
    tips += [(f"{name} accuracy", f"@{acc_column('ext:' + name)}{{0.0}}%") for name in external]
    return tips + [("collapsed", "@collapsed"), ("status", "@train_status")]


def size_figure(means: pd.DataFrame, points: pd.DataFrame, baselines: dict[str, float], band: dict,
                external: list[str], title: str, has_band: bool = True):
    """The figure and the sources the size switch rewrites: seeds, means, labels (x) and band (data);
    `has_band` False (no curve on any axis) leaves the band out of the legend."""
    fig = figure(height=460, sizing_mode="stretch_width", x_axis_type="log", title=title, name="size_figure",
                 x_axis_label=SIZE_AXES["params"] + " (log scale)", y_axis_label="accuracy (%)",
                 tools="pan,wheel_zoom,box_zoom,reset,save")
    fig.x_range.range_padding = 0.2
    sources = {"seeds": ColumnDataSource(styled(points, "collapsed")),
               "means": ColumnDataSource(styled(means, "all_collapsed")), "band": ColumnDataSource(band)}
    legend = {"legend_label": "fitted scaling curve"} if has_band else {}
    fig.varea(x="x", y1="lo", y2="hi", source=sources["band"], fill_color="#2ecc71", fill_alpha=0.18, **legend)
    fig.line(x="x", y="estimate", source=sources["band"], line_color="#27ae60", line_width=1.5, **legend)
    fig.segment(x0="x", y0="lo", x1="x", y1="hi", source=sources["means"], line_color="colour", line_width=2)
    mean_marks = fig.scatter(x="x", y="mean", source=sources["means"], marker="marker", size=13, line_width=2,
                             line_color="colour", fill_color="colour", fill_alpha="fill", legend_group="role")
    seed_marks = fig.scatter(x="x", y=acc_column("test"), source=sources["seeds"], marker="marker", size=7,
                             line_color="colour", fill_color="colour", fill_alpha="fill", alpha=0.6)
    fig.add_tools(HoverTool(renderers=[seed_marks], tooltips=seed_tooltips(external)),
                  HoverTool(renderers=[mean_marks], tooltips=[
                      ("configuration", "@config"), ("seeds in the mean", "@seeds (@collapsed_seeds collapsed)"),
                      ("mean accuracy", "@mean{0.0}% [@lo{0.0}, @hi{0.0}]"), ("params", "@params{0,0}"),
                      ("FLOPs", "@flops{0.00a}"), ("latency", "@latency_ms{0.000} ms")]))
    marked = means[means["role"] != "fusion"]
    sources["labels"] = ColumnDataSource({**styled(marked, "all_collapsed"), "text": marked["role"].tolist()})
    fig.text(x="x", y="mean", text="text", source=sources["labels"], x_offset=9, y_offset=-5, text_font_size="9pt",
             text_color="colour")
    for text, value in baseline_labels(baselines):
        fig.add_layout(Span(location=value, dimension="width", line_dash="dashed", line_color="#7f8c8d"))
        fig.add_layout(Label(x=8, x_units="screen", y=value, y_offset=2, text=text, text_font_size="8pt",
                             text_color="#7f8c8d"))
    fig.add_layout(fig.legend[0], "right")
    fig.legend.click_policy = "hide"
    fig.legend.label_text_font_size = "8pt"
    return fig, sources


def baseline_labels(baselines: dict[str, float]) -> list[tuple[str, float]]:
    """One dashed line per distinct level, e.g. ('chance 50.0%', 50.0) or ('chance = majority class 50.0%', 50.0)."""
    levels: dict[float, list[str]] = {}
    for name, value in baselines.items():
        levels.setdefault(round(value, 6), []).append(BASELINE_WORDS.get(name, name))
    return [(" = ".join(names) + f" {value:.1f}%", value) for value, names in levels.items()]


def band_data(scaling: dict | None, split: str, size: str) -> dict | None:
    """The analyze object's `curve` as band columns, or None when scaling.json has no curve for this axis."""
    analyze = ((scaling or {}).get(split) or {}).get(size) or {}
    curve = sorted((p for p in analyze.get("curve") or [] if _finite(p.get("size")) and p["size"] > 0),
                   key=lambda p: p["size"])
    if not curve:
        return None
    return {"x": [p["size"] for p in curve], "estimate": [_or_nan(p.get("estimate")) for p in curve],
            "lo": [_or_nan(p.get("lo")) for p in curve], "hi": [_or_nan(p.get("hi")) for p in curve]}


def verdict_sentence(scaling: dict | None, split: str, size: str) -> str:
    """The analyze object's verdict sentence and per-halving estimate, or a note saying there is none."""
    analyze = ((scaling or {}).get(split) or {}).get(size)
    if not analyze:
        return f"No scaling fit against {SIZE_AXES[size]} in scaling.json."
    # the sentence already holds the per-halving change and the collapsed count: said once, in its own words
    text = analyze.get("verdict_text") or f"Verdict: {analyze.get('verdict', 'none given')}."
    return f"Primary analysis: {text}" if analyze.get("primary") else text   # a secondary's sentence says so itself


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _or_nan(value) -> float:
    return float(value) if _finite(value) else math.nan
