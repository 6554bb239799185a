"""Bench results: the machine it ran on, the stdout table, and the JSON file."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from sweep import runtime
from sweep.files import write_json_atomic


def hardware() -> dict:
    """The machine (sweep.runtime.hardware) plus the backend and devices JAX computes on."""
    info = runtime.hardware()
    try:
        info.update(runtime.jax_devices())
    except Exception as err:  # noqa: BLE001 - reported, not fatal
        info["jax_devices_error"] = str(err)
    return info


def write_json(path: str | os.PathLike, result: dict) -> Path:
    return write_json_atomic(path, result)


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(result: dict, epoch_images: int = 15_500) -> str:
    """A short text table: one row per (model, size, batch), then peak, overheads and peer ratios."""
    lines = [f"{'model':<11}{'px':>5}{'batch':>6}{'train img/s':>13}{'eval img/s':>12}{'GFLOP/img':>11}"
             f"{'GFLOP/s':>9}{'% peak':>8}{'compile s':>11}{'s/epoch':>9}"]
    for row in result.get("models", []):
        if "error" in row:
            lines.append(f"{row['model']:<11}{row['image_size']:>5}{row['batch_size']:>6}  error: {row['error'][:70]}")
            continue
        train = row["train"]["images_per_s"]
        per_image = row.get("train_flops_per_image")
        lines.append(
            f"{row['model']:<11}{row['image_size']:>5}{row['batch_size']:>6}{_fmt(train):>13}"
            f"{_fmt(row.get('eval', {}).get('images_per_s')):>12}{_fmt(per_image and per_image / 1e9, 2):>11}"
            f"{_fmt(row.get('train_flops_per_s') and row['train_flops_per_s'] / 1e9):>9}"
            f"{_fmt(row.get('train_fraction_of_peak') and 100 * row['train_fraction_of_peak']):>8}"
            f"{_fmt(row.get('train_compile_s')):>11}{_fmt(epoch_images / train, 0):>9}")
    peak = result.get("peak", {})
    if peak.get("flops_per_s"):
        lines.append(f"peak: {peak['dtype']} {peak['n']}x{peak['n']} matmul {peak['flops_per_s'] / 1e9:,.1f} GFLOP/s median, "
                     f"{peak.get('best_flops_per_s', peak['flops_per_s']) / 1e9:,.1f} best (the % peak basis)")
    extras = {
        "compile from cache": lambda r: f"{r['cold']['compile_s']:.1f} s cold -> {r['cached']['compile_s']:.2f} s cached",
        "input pipeline": lambda r: ", ".join(f"{size} px {f['images_per_s']:,.0f} images/s (peak RSS "
                                              f"{f['peak_rss_mb']:,.0f} MB)" for size, f in r["by_size"].items()),
        "shap": lambda r: (f"ratio {r['ratio']:.2f} [{r['ratio_min']:.2f}-{r['ratio_max']:.2f}] over {r['windows']} windows"
                           f" ({r['images']} images x {r['max_evals']} evals, batch {r['batch_size']})"),
        "ray": lambda r: (f"{r['overhead_per_trial_s']:.2f} s overhead per trial, "
                          f"{r['overhead_per_trial_excluding_init_s']:.2f} s without Ray's start (K={r['trials']}, "
                          f"workers reused); a fresh worker per trial: "
                          f"{r['fresh_process']['overhead_per_trial_excluding_init_s']:.2f} s"
                          if "fresh_process" in r else f"{r['overhead_per_trial_s']:.2f} s overhead per trial"),
        "seeds": lambda r: (f"{r['seeds']} seeds of {r['config']} at {r['image_size']} px: vmapped "
                            f"{r['vmap_images_per_s']:,.0f} images/s vs sequential {r['sequential_images_per_s']:,.0f}"
                            f" ({r['seeds_vmap_over_sequential']:.2f}x"
                            f"{_spread_text(r.get('seeds_vmap_over_sequential_windows'))})"),
        "checkpoints": lambda r: f"{r['image_size']} px, {r['epochs']} epochs, {r['checkpoints_per_trial']} taken: " + (
            ", ".join(f"{m['model']} {m['bytes_per_epoch'] / 2**20:,.1f} MiB/epoch ({m['states_per_checkpoint']:.2f} "
                      f"states per checkpoint)" for m in r["models"] if "bytes_per_epoch" in m)
            + (f"; errors: {'; '.join(r['errors'])[:120]}" if r.get("errors") else "")),
    }
    keys = {"compile from cache": "compile_cache", "input pipeline": "pipeline", "shap": "shap", "ray": "ray",
            "seeds": "seeds", "checkpoints": "checkpoints"}
    for label, render in extras.items():
        entry = result.get(keys[label])
        if not entry:
            continue
        text = f"skipped ({entry['skipped']})" if "skipped" in entry else (
            f"error ({entry['error'][:80]})" if "error" in entry else render(entry))
        lines.append(f"{label}: {text}")
    spreads = result.get("ratio_spread", {})
    for key, ratio in result.get("ratios", {}).items():
        setting = (spreads.get(key) or {}).get("peer_setting")
        lines.append(f"{key}: {ratio:.2f}x" + (f" (vs {setting})" if setting else "") + _spread_text(spreads.get(key)))
    for error in result.get("peer_errors", []):
        lines.append(f"PEER ERROR, no figure: {error}")
    tuned = result.get("autotune", {})
    if tuned.get("signature_id"):
        lines.append(f"autotune table {tuned['signature_id']}: " + "; ".join(
            f"{key} train {c['train']['forms']}, inference {c['inference']['forms']}"
            f"{' +YNNPACK' if c['inference'].get('ynnpack') else ''}" for key, c in tuned.get("programs", {}).items()))
    for model, entry in result.get("conv_layers", {}).get("models", {}).items():
        for phase, totals in entry["totals"].items():
            times = ", ".join(f"{k[:-3]} {v:.1f}" for k, v in totals.items() if k.endswith("_ms"))
            tf = totals.get("tensorflow_over_ours")
            lines.append(f"conv layers {model} {phase}: ms per batch {times}"
                         + (f"; tensorflow/ours {tf:.2f}x" if tf else ""))
    load = result.get("load", {})
    if load:
        lines.append(f"load average before/after: {load.get('before')} / {load.get('after')}")
    return "\n".join(lines)


def _spread_text(entry: dict | None) -> str:
    """' [min-max] over n windows, CPU-seconds ratio r' for a ratio_windows entry."""
    if not entry:
        return ""
    text = f" [{entry['wall']['min']:.2f}-{entry['wall']['max']:.2f}] over {len(entry['windows'])} windows"
    return text + (f", CPU seconds {entry['cpu_ratio']:.2f}x" if "cpu_ratio" in entry else "")


def stdout_table(result: dict) -> None:
    print(table(result), file=sys.stdout, flush=True)


def markdown(result: dict, epoch_images: int = 15_500) -> str:
    """results/README.md material: per seed model images/s and seconds per seed-sized epoch, peer ratios, params vs FLOPs."""
    lines = [f"| model | px | batch | train img/s | s per {epoch_images:,}-image epoch | eval img/s | "
             "GFLOP per train image | % of f32 matmul peak |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result.get("models", []):
        if "train" not in row:
            continue
        train = row["train"]["images_per_s"]
        per_image = row.get("train_flops_per_image")
        fraction = row.get("train_fraction_of_peak")
        lines.append(f"| {row['model']} | {row['image_size']} | {row['batch_size']} | {train:,.1f} | "
                     f"{epoch_images / train:,.0f} | {row.get('eval', {}).get('images_per_s', float('nan')):,.1f} | "
                     f"{_fmt(per_image and per_image / 1e9, 2)} | {_fmt(fraction and 100 * fraction)} |")
    ratios = {k: v for k, v in result.get("ratios", {}).items() if "px_b" not in k}
    if ratios:
        spreads = result.get("ratio_spread", {})
        lines += ["", "| ours / Keras 3 (their time / ours) | median | min-max | CPU seconds |", "|---|---:|---:|---:|"]
        for key, value in ratios.items():
            entry = spreads.get(key, {})
            span = f"{entry['wall']['min']:.2f}-{entry['wall']['max']:.2f}" if entry else "-"
            lines.append(f"| {key} | {value:.2f}x | {span} | {_fmt(entry.get('cpu_ratio'), 2)} |")
    lines += conv_layers_markdown(result.get("conv_layers", {}))
    story = result.get("flops_vs_params")
    if story and "models" in story:
        lines += ["", f"| model at {story['image_size']} px | params | forward GFLOP per image | FLOPs per param |",
                  "|---|---:|---:|---:|"]
        for name, m in story["models"].items():
            lines.append(f"| {name} | {m['params']:,} | {m['forward_flops_per_image'] / 1e9:.2f} | {m['flops_per_param']:.0f} |")
        branches = story.get("fusion_branches", {})
        for key in ("cnn_branch", "resnet_branch"):
            if key in branches:
                b = branches[key]
                lines.append(f"\nfusion {key}: Dense({b['units']}) per pixel on a {'x'.join(map(str, b['map']))} map: "
                             f"{b['params']:,} params, {b['forward_flops'] / 1e9:.3f} GFLOP forward per image, "
                             f"{b['output_floats_per_image']:,} output floats per image")
    return "\n".join(lines)


def conv_layers_markdown(section: dict) -> list[str]:
    """One table per model: each distinct conv layer's ms per batch (ours, XLA, TensorFlow) forward and with
    gradients, and TensorFlow's time over ours (above 1: ours is faster)."""
    lines = []
    for model, entry in section.get("models", {}).items():
        lines += ["", f"conv layers of {model} at {section['image_size']} px, batch {section['batch_size']} "
                      "(ms per call, median of interleaved windows)", "",
                  "| layer | n | form | fwd ours | fwd xla | fwd tf | tf/ours | grad ours | grad xla | grad tf | tf/ours |",
                  "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in entry["layers"] + [{"shape": "**total (x n)**", "count": "", "form": "", **entry["totals"]}]:
            cells = []
            for phase in ("fwd", "grad"):
                f = row[phase]
                ratio = f.get("tensorflow_over_ours")
                ratio = ratio["ratio"] if isinstance(ratio, dict) else ratio
                cells += [_fmt(f.get("ours_ms"), 2), _fmt(f.get("xla_ms", f.get("ours_ms")), 2),
                          _fmt(f.get("tensorflow_ms"), 2), _fmt(ratio, 2)]
            lines.append(f"| {row['shape']} | {row['count']} | {row['form']} | " + " | ".join(cells) + " |")
    return lines
