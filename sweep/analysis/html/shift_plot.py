"""Under shift: each configuration's in-source and external accuracy against size on the same axes, joined by a
vertical line per configuration so each drop is visible."""
from __future__ import annotations

import pandas as pd
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

from sweep.analysis.html.points import SIZE_AXES, config_means

SPLIT_COLOURS = ("#1f77b4", "#d35400", "#8e44ad", "#16a085", "#c0392b", "#7f8c8d")


def shift_figure(points: pd.DataFrame, external: list[str]):
    """The figure and its sources by split (for the size switch); (None, {}) when there is no external set."""
    if not external:
        return None, {}
    fig = figure(height=420, sizing_mode="stretch_width", x_axis_type="log", name="shift_figure",
                 title="in-source and external accuracy against size (configuration means, 90% intervals over seeds)",
                 x_axis_label=SIZE_AXES["params"] + " (log scale)", y_axis_label="accuracy (%)",
                 tools="pan,wheel_zoom,box_zoom,reset,save")
    fig.x_range.range_padding = 0.2
    in_source = config_means(points, "test").set_index("config")["mean"]
    sources, marks = {}, []
    for index, split in enumerate(["test"] + [f"ext:{name}" for name in external]):
        means = config_means(points, split)
        if means.empty:
            continue
        colour = SPLIT_COLOURS[index % len(SPLIT_COLOURS)]
        means["in_source"] = means["config"].map(in_source)
        means["gap"] = means["mean"] - means["in_source"]
        means["fill"] = [0.0 if hollow else 0.8 for hollow in means["all_collapsed"]]
        source = sources[split] = ColumnDataSource({**{c: means[c].tolist() for c in means.columns},
                                                    "x": means["params"].tolist()})
        name = "in-source (test)" if split == "test" else f"external: {split[4:]}"
        if split != "test":
            fig.segment(x0="x", y0="in_source", x1="x", y1="mean", source=source, line_color=colour,
                        line_alpha=0.45, line_width=1.5, legend_label=name)
        fig.segment(x0="x", y0="lo", x1="x", y1="hi", source=source, line_color=colour, line_alpha=0.7,
                    legend_label=name)
        marks.append(fig.scatter(x="x", y="mean", source=source, size=10, line_color=colour, fill_color=colour,
                                 fill_alpha="fill", marker="circle" if split == "test" else "triangle",
                                 legend_label=name))
    fig.add_tools(HoverTool(renderers=marks, tooltips=[
        ("configuration", "@config"), ("split", "@split"), ("mean accuracy", "@mean{0.0}% [@lo{0.0}, @hi{0.0}]"),
        ("in-source", "@in_source{0.0}%"), ("external minus in-source", "@gap{+0.0} points"), ("seeds", "@seeds")]))
    fig.add_layout(fig.legend[0], "right")
    fig.legend.click_policy = "hide"
    fig.legend.label_text_font_size = "8pt"
    return fig, sources
