"""What the sweep driver prepares once, beside the dataset, for every trial to read: the evaluation sets (external
folders and synthetic sites as `ext:NAME`, counterfactual copies of the synthetic test images as `cf:NAME`), and
the measurements of the confound that need the images (the probe, how class and source are entangled).

Each set is one .npz in the dataset cache, named by a hash of what made it; a trial opens the driver's file where
its node sees it, and builds the same file (same name) where it does not, like data.builder.open_prepared.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from data import external
from data.builder import cache_root
from data.spec import DataSpec, ExternalSpec

COUNTERFACTUALS = {"no_marker": "the test images that carry a burnt-in marker, with the marker removed",
                   "no_shift": "the test images whose site shifts their brightness, with the shift undone"}
CHANGES = {"no_marker": {"markers": False}, "no_shift": {"shift": False}}
PROBE_CHUNK = 256  # images read at a time for the probe's features


def sets_folder(data: DataSpec) -> Path:
    return cache_root(data) / "eval-sets"


def prepare_external_sets(externals: dict[str, ExternalSpec], data: DataSpec) -> dict[str, str]:
    """{'ext:NAME': .npz path} of every external set (built when absent). Raises ValueError/FileNotFoundError
    naming the set, folder or file that cannot be read: call it before any trial starts."""
    paths = external.prepare_sets(externals, data, sets_folder(data))
    return {f"ext:{name}": str(path) for name, path in paths.items()}


def prepare_counterfactual_sets(data: DataSpec, prepared) -> dict[str, str]:
    """{'cf:NAME': .npz path}: copies of the synthetic test images without their marker, and without their
    brightness shift, where any has one ({} for folders of real images)."""
    if data.source != "synthetic":
        return {}
    from data.synthetic import counterfactual_ids, regenerate

    test = prepared.split("test")
    out = {}
    for name, change in CHANGES.items():
        ids = counterfactual_ids(data, [str(i) for i in test.ids], test.marker_boxes, **change)
        if not ids:
            continue
        key = external.cache_key({"counterfactual": name, "dataset": Path(prepared.path).name, "ids": ids}, data)
        path = sets_folder(data) / f"eval-{key}.npz"
        if not path.is_file():
            drawn = regenerate(data, ids, **change)
            external.save(path, {"images": drawn["images"], "labels": drawn["labels"], "ids": drawn["ids"],
                                 "groups": drawn["ids"], "marker_boxes": drawn["marker_boxes"]})
        out[f"cf:{name}"] = str(path)
    return out


def describe(paths: dict[str, str], externals: dict[str, ExternalSpec], classes) -> dict[str, dict]:
    """{split: what manifest.json records of it}: its images per class, and its folder or what the copies are."""
    records = {}
    for split, path in paths.items():
        counts = external.class_counts(path, classes)
        kind, _, name = split.partition(":")
        record = {"n_images": sum(counts.values()), "classes": counts}
        if kind == "cf":
            record["what"] = COUNTERFACTUALS[name]
        elif externals[name].source == "radiography":
            record["data_dir"] = externals[name].data_dir
        else:
            record["site"] = dataclasses.asdict(externals[name].site)
        records[split] = record
    return records


def open_eval_sets(paths: dict[str, str], externals: dict[str, ExternalSpec], data: DataSpec, prepared) -> dict:
    """{split: in-memory split arrays} for a trial: the driver's files, rebuilt here (same names) where this node
    does not see them."""
    if any(not Path(path).is_file() for path in paths.values()):
        wanted = {name for name in externals if f"ext:{name}" in paths}
        rebuilt = {**prepare_external_sets({n: externals[n] for n in wanted}, data),
                   **prepare_counterfactual_sets(data, prepared)}
        paths = {split: rebuilt.get(split, path) for split, path in paths.items()}
    return {split: external.load(path) for split, path in paths.items()}


def measure_confound(prepared, data: DataSpec) -> dict:
    """The confound probe over every image of the dataset (all splits, grouped by patient) and, where each image's
    source is known, how class and source are entangled."""
    from sweep.analysis.confound import features_of, probe
    from sweep.analysis.shift import entanglement
    from sweep.analysis.shift_report import sources_of

    features, labels, groups, ids = [], [], [], []
    for name in ("train", "val", "test"):
        split = prepared.split(name)
        n = len(split)
        features.append(features_of(split.images[start:start + PROBE_CHUNK] for start in range(0, n, PROBE_CHUNK)))
        labels.append(np.asarray(split.labels))
        groups.append(np.asarray(split.groups).astype(str))
        ids += [str(i) for i in split.ids]
    labels = np.concatenate(labels)
    out = {"confound_probe": probe(np.concatenate(features), labels, np.concatenate(groups), data.classes)}
    sources = sources_of({"sweep_config": {"train": {"data": dataclasses.asdict(data)}}})
    if sources:
        out["entanglement"] = entanglement([data.classes[k] for k in labels], [sources.get(i, "(unknown)") for i in ids])
    return out
