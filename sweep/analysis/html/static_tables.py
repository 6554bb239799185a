"""The report's plain tables (no script needed): shift.json's gaps, confound probe and per-source accuracy, and the
scaling verdicts on external splits."""
from __future__ import annotations

import html
import math

from sweep.analysis.html.size_plot import verdict_sentence


def html_table(columns: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f'<table class="plain"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def shift_tables(shift: dict | None, scaling: dict | None) -> str:
    """HTML for the 'under shift' section below its figure; empty when neither file says anything about shift."""
    parts = []
    for split in sorted(s for s in (scaling or {}) if s.startswith("ext:")):
        parts.append(f'<p class="verdict">Under shift to {html.escape(split[4:])}: '
                     f"{html.escape(verdict_sentence(scaling, split, 'params'))}</p>")
    for name, block in ((shift or {}).get("externals") or {}).items():
        rows = [[g.get("config"), _num(g.get("in_source")), _num(g.get("external")),
                 f"{_num(g.get('gap'), '+.3g')} [{_num(g.get('lo'), '+.3g')}, {_num(g.get('hi'), '+.3g')}]"]
                for g in block.get("gap") or []]
        parts.append(f"<h3>{html.escape(name)} ({_num(block.get('n_images'), '.0f')} images): gap per configuration "
                     "(shift.json)</h3>"
                     + html_table(["configuration", "in-source", "external", "gap [90% interval]"], rows))
    probe = (shift or {}).get("confound_probe")
    if probe:
        parts.append(f"<p>Confound probe (a small model on features that carry no anatomy: "
                     f"{html.escape(', '.join(map(str, probe.get('features') or [])))}): AUC "
                     f"{_num(probe.get('auc'))} [{_num(probe.get('lo'))}, {_num(probe.get('hi'))}].</p>")
    per_source = (shift or {}).get("per_source")
    if per_source:
        parts.append("<h3>Accuracy per source and class</h3>" + html_table(
            ["source", "class", "images", "accuracy"],
            [[r.get("source"), r.get("class"), _num(r.get("n"), ".0f"), _num(r.get("accuracy"))] for r in per_source]))
    return "\n".join(parts)


def _num(value, spec: str = ".3g") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "–"
