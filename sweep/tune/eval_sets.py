"""What the sweep driver prepares once, beside the dataset, for every trial to read: the evaluation sets (external
folders and synthetic sites as `ext:NAME`, counterfactual copies of the synthetic test images as `cf:NAME`), and
the measurements of the confound that need the images (the probe, how class and source are entangled)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data import external
from data.builder import cache_root
from data.spec import DataSpec
from sweep.configs.schema import SweepConfig

COUNTERFACTUALS = {"no_marker": "the test images that carry a burnt-in marker, with the marker removed",
                   "no_shift": "the test images whose site shifts their brightness, with the shift undone"}
PROBE_CHUNK = 256  # images read at a time for the probe's features


def prepare_eval_sets(sweep: SweepConfig, prepared) -> tuple[dict[str, str], dict[str, dict]]:
    """({split: .npz path}, {split: what the manifest records}) of every evaluation set of the sweep."""
    data = sweep.train.data
    folder = cache_root(data) / "eval-sets"
    paths = {f"ext:{name}": path for name, path in external.prepare_sets(sweep.externals, data, folder).items()}
    if data.source == "synthetic":
        paths.update({f"cf:{name}": path for name, path in counterfactual_sets(data, prepared, folder).items()})
    records = {}
    for split, path in paths.items():
        counts = external.class_counts(path, data.classes)
        records[split] = {"n_images": sum(counts.values()), "classes": counts,
                          **({"what": COUNTERFACTUALS[split[3:]]} if split.startswith("cf:") else {}),
                          **({"data_dir": sweep.externals[split[4:]].data_dir} if split.startswith("ext:") else {})}
    return {split: str(path) for split, path in paths.items()}, records


def counterfactual_sets(data: DataSpec, prepared, folder: Path) -> dict[str, Path]:
    """Copies of the synthetic test images without the marker, and without the brightness shift, where any has one."""
    from data.synthetic import counterfactual_ids, regenerate

    test = prepared.split("test")
    out = {}
    for name, change in (("no_marker", {"markers": False}), ("no_shift", {"shift": False})):
        ids = counterfactual_ids(data, [str(i) for i in test.ids], test.marker_boxes, **change)
        if not ids:
            continue
        key = external.cache_key({"counterfactual": name, "dataset": Path(prepared.path).name}, data)
        path = folder / f"eval-{key}.npz"
        if not path.is_file():
            drawn = regenerate(data, ids, **change)
            external.save(path, {"images": drawn["images"], "labels": drawn["labels"], "ids": np.asarray(ids),
                                 "groups": np.asarray(ids), "marker_boxes": drawn["marker_boxes"]})
        out[name] = path
    return out


def load_eval_sets(paths: dict[str, str]) -> dict:
    """{split: split arrays} for a trial, from the driver's prepared files."""
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
    sources = sources_of({"sweep_config": {"train": {"data": _spec_dict(data)}}})
    if sources:
        out["entanglement"] = entanglement([data.classes[k] for k in labels], [sources.get(i, "(unknown)") for i in ids])
    return out


def _spec_dict(data: DataSpec) -> dict:
    import dataclasses

    return dataclasses.asdict(data)
