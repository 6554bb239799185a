"""effects.json, its sentences, the forest plot (plots/effects.png) and the report's section on partial effects."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from matplotlib.figure import Figure  # drawn headless, without pyplot's global state

from sweep.analysis.effects import effects
from sweep.analysis.inputs import InputError
from sweep.configs.star import PARENT_WORDS, step_words
from sweep.files import write_bytes_atomic, write_json_atomic

FACTOR_WORDS = {"cnn_cut": "CNN cut", "resnet_cut": "ResNet50V2 cut", "branch_width": "branch width",
                "head_width": "head width"}
FLAG_P = 0.05


def p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def change_words(row: dict) -> str:
    """'one CNN block deeper (block4_drop)', 'without the ResNet50V2 branch', 'branch width halved (32)'."""
    factor = row["factor"]
    if factor in PARENT_WORDS and row["to"] == "none":
        return f"without the {PARENT_WORDS[factor]} branch"
    if factor in PARENT_WORDS and row["from"] == "none":
        return f"with a {PARENT_WORDS[factor]} branch at {row['to']}"
    return f"{step_words(factor, row['steps'])} ({row['to']})"


def effect_words(row: dict) -> str:
    """'one CNN block deeper (block4_drop): +2.1 points (90% interval -0.4 to +4.6)'."""
    flag = f", Holm p {p_text(row['p_holm'])}" if row["p_holm"] < FLAG_P else ""
    return (f"{change_words(row)}: {row['delta']:+.1f} points ({row['level']:.0%} interval {row['lo']:+.1f} to "
            f"{row['hi']:+.1f}{flag})")


def sentences(result: dict) -> list[str]:
    """One sentence per factor (each parent's cut, the widths), its steps in order."""
    out = []
    for factor in FACTOR_WORDS:
        rows = [r for r in result["effects"] if r["factor"] == factor]
        if rows:
            text = "; ".join(effect_words(r) for r in rows)
            words = FACTOR_WORDS[factor]
            out.append(f"{words[0].upper()}{words[1:]} from {rows[0]['from']}: {text}.")
    return out


def write_effects(results_dir: Path, trials, predictions, manifest: dict, *, reference: str | None = None,
                  path: Path | None = None) -> tuple[dict, dict[str, Path]]:
    """Compute the effects object and write it (effects.json, or `path`) and the forest plot. InputError when the
    folder has no one-factor neighbours to compare (nothing is written then)."""
    result = effects(trials.astype({"trial_id": str}), predictions, reference=reference, around=manifest.get("around"))
    result["sentences"] = sentences(result)
    result["skipped"] = list(manifest.get("around_skipped") or []) if manifest.get("around") == result["reference"] \
        else []
    written = {"effects": write_json_atomic(path or Path(results_dir) / "effects.json", result),
               "plot_effects": forest_plot(result, Path(results_dir) / "plots" / "effects.png")}
    return result, written


def effects_outputs(results_dir: Path, trials, predictions, manifest: dict) -> tuple[dict, list[str]]:
    """What `report` (and so the end of `run`) makes of the effects: (files written, report.md lines). A sweep
    without one-factor neighbours writes nothing (an `--around` sweep says why); a stale effects.json goes."""
    try:
        result, written = write_effects(results_dir, trials, predictions, manifest)
    except InputError as err:
        for stale in (Path(results_dir) / "effects.json", Path(results_dir) / "plots" / "effects.png"):
            stale.unlink(missing_ok=True)
        return {}, ([f"## Partial effects around {manifest['around']}", "", f"No effects: {err}", ""]
                    if manifest.get("around") else [])
    return written, markdown(result, lead=bool(manifest.get("around")))


def markdown(result: dict, *, lead: bool) -> list[str]:
    """The report section: sentences, a table, the forest plot, how the numbers are made."""
    title = (f"## The answer: a little more or less of either parent, around {result['reference']}" if lead
             else f"## Partial effects around {result['reference']} (secondary: one-factor neighbours in the grid)")
    lines = [title, "",
             f"The reference scores {result['reference_accuracy']:.1f}% over {result['reference_n_seeds']} seeds on "
             f"{result['n_images']} test images of {result['n_patients']} patients. Each change below is the "
             "neighbour's mean accuracy minus the reference's, on the same images:", ""]
    lines += [f"- {s}" for s in result["sentences"]] + [""]
    lines += ["| factor | from | to | steps | seeds | change (points) | 90% interval | Holm p |",
              "|---|---|---|---:|---:|---:|---|---:|"]
    for r in result["effects"]:
        lines.append(f"| {FACTOR_WORDS[r['factor']]} | {r['from']} | {r['to']} | {r['steps']:+d} | {r['n_seeds']} "
                     f"| {r['delta']:+.1f} | {r['lo']:+.1f} to {r['hi']:+.1f} | {p_text(r['p_holm'])} |")
    lines += ["", "![partial effects](plots/effects.png)", "",
              f"Intervals: {result['method']} (docs/effects.md). "
              + (f"{result['n_collapsed']} collapsed trial(s) of these configurations are left out. "
                 if result["n_collapsed"] else "No trial of these configurations collapsed. ")
              + (f"No effect for {', '.join(result['unestimated'])}: every seed collapsed. "
                 if result.get("unestimated") else "")
              + (f"Not trained: {'; '.join(result['skipped'])}." if result.get("skipped") else ""), ""]
    return lines


def forest_plot(result: dict, path: Path) -> Path:
    """Each effect as a point with its interval, grouped by factor; filled where Holm p < 0.05."""
    rows = result["effects"]
    fig = Figure(figsize=(9, 0.42 * len(rows) + 1.6), dpi=110)
    ax = fig.add_subplot()
    colors = {"cnn_cut": "tab:orange", "resnet_cut": "tab:red", "branch_width": "tab:blue",
              "head_width": "tab:green"}
    for y, r in enumerate(reversed(rows)):
        color = colors[r["factor"]]
        ax.plot([r["lo"], r["hi"]], [y, y], color=color, lw=2)
        ax.scatter([r["delta"]], [y], s=46, zorder=3, color=color,
                   facecolors=color if r["p_holm"] < FLAG_P else "white", edgecolors=color)
    ax.axvline(0, color="0.4", lw=1, ls="--")
    ax.set_yticks(range(len(rows)), [change_words(r) for r in reversed(rows)], fontsize=8)
    ax.set_xlabel(f"test accuracy, neighbour minus reference (points; {result['level']:.0%} interval; "
                  f"filled: Holm p < {FLAG_P})", fontsize=9)
    ax.set_title(f"partial effects around {result['reference']}\n(reference {result['reference_accuracy']:.1f}% over "
                 f"{result['reference_n_seeds']} seeds, {result['n_patients']} test patients)", fontsize=9)
    ax.grid(axis="x", color="0.9")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return write_bytes_atomic(path, buffer.getvalue())


def html_section(results_dir: Path) -> str:
    """report.html's effects section from effects.json and plots/effects.png ('' when the folder has none)."""
    path = Path(results_dir) / "effects.json"
    if not path.is_file():
        return ""
    result = json.loads(path.read_text())
    parts = [f"<p>Around <b>{html.escape(result['reference'])}</b> ({result.get('reference_accuracy', 0):.1f}%): "
             "each change is the neighbour's accuracy minus the reference's on the same test images, with a "
             f"{result.get('level', 0.9):.0%} interval (effects.json).</p>",
             "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in result.get("sentences") or []) + "</ul>"]
    plot = Path(results_dir) / "plots" / "effects.png"
    if plot.is_file():
        data = base64.b64encode(plot.read_bytes()).decode()
        parts.append(f'<img alt="partial effects" style="max-width:100%" src="data:image/png;base64,{data}">')
    return "\n".join(parts)
