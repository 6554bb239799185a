"""prepare(): build a dataset once into the cache (streamed, one image at a time, into TFDS array_record files), or
reuse it. Safe when several processes or machines share the cache folder: one builds while the others wait, and a
dataset appears under its final name only when complete (atomic rename)."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from data import locking
from data.parallel import available_cores, ordered_mapper
from data.prepared import FORMAT_VERSION, MANIFEST, PreparedDataset
from data.records import SplitWriter, features, tfds_dir, write_metadata
from data.spec import DataSpec
from data.splits import SPLITS, check_fractions, grouped_split

SOURCES = ("synthetic", "radiography")
PARALLEL_FROM = 1000  # images; smaller builds are not worth starting worker processes


class CacheNotWritable(ValueError):
    """The cache folder cannot be written (the one-line message names it and the ways out)."""


def user_cache_dir() -> Path:
    """$FUSION_SWEEP_CACHE, else $XDG_CACHE_HOME/fusion-sweep, else ~/.cache/fusion-sweep (sweep.runtime re-exports it)."""
    if os.environ.get("FUSION_SWEEP_CACHE"):
        return Path(os.environ["FUSION_SWEEP_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fusion-sweep"


def cache_root(spec: DataSpec) -> Path:
    return Path(spec.cache_dir).expanduser() if spec.cache_dir else user_cache_dir() / "datasets"


def validate(spec: DataSpec) -> None:
    """Cheap checks of the spec, before any work."""
    if spec.source not in SOURCES:
        raise ValueError(f"data source must be one of {SOURCES}, got {spec.source!r}")
    if not spec.classes:
        raise ValueError("classes must name at least one class")
    if not 8 <= spec.image_size <= 1024:
        raise ValueError(f"image_size must be in [8, 1024], got {spec.image_size}")
    check_fractions(spec.split_fractions)
    if spec.subset is not None and spec.subset < 1:
        raise ValueError(f"subset must be >= 1 (images per class), got {spec.subset}")
    if spec.source == "synthetic":
        from data.synthetic import class_patterns, source_of

        class_patterns(spec.classes)
        source_of(spec)  # the generator checks its own settings (difficulty, marker rates, shifts) when made
        if spec.num_images < 3 * len(spec.classes):
            raise ValueError(f"num_images={spec.num_images} is too few for three splits of {len(spec.classes)} classes")
        from data.sites import check_sites

        check_sites(spec)
    check_strata(spec)


def check_strata(spec: DataSpec) -> None:
    """The split's strata: 'class', or 'source_class' where each image's source is known (synthetic sites, or a
    metadata.csv source column: checked when the folder is scanned)."""
    from data.spec import SPLIT_STRATA

    if spec.split_strata not in SPLIT_STRATA:
        raise ValueError(f"split_strata must be one of {SPLIT_STRATA}, got {spec.split_strata!r}")
    if spec.rare_to_test < 0:
        raise ValueError(f"rare_to_test must be >= 0 (images), got {spec.rare_to_test}")
    if spec.source == "synthetic" and spec.split_strata == "source_class" and not spec.sites:
        raise ValueError("split_strata='source_class' on synthetic data needs sites (DataSpec.sites)")


def cache_key(spec: DataSpec, fingerprint: str) -> str:
    """Everything that changes the prepared records, hashed."""
    fields = {
        "format": FORMAT_VERSION, "source": spec.source, "fingerprint": fingerprint, "classes": list(spec.classes),
        "image_size": spec.image_size, "split_fractions": list(spec.split_fractions), "split_seed": spec.split_seed,
        "subset": spec.subset, "skip_bad": spec.skip_bad,
    }
    if spec.split_strata != "class" or spec.rare_to_test:
        fields.update(split_strata=spec.split_strata, rare_to_test=spec.rare_to_test)
    if spec.source == "synthetic":
        fields.update(num_images=spec.num_images, difficulty=spec.difficulty, synthetic_seed=spec.synthetic_seed,
                      marker_rate=None if spec.marker_rate is None else list(spec.marker_rate),
                      intensity_shift=None if spec.intensity_shift is None else list(spec.intensity_shift))
        if spec.sites:
            fields["sites"] = [dataclasses.asdict(site) for site in spec.sites]
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def _progress_bar(enabled: bool, unit: str, total: int | None = None):
    if not enabled:
        return None
    from tqdm import tqdm

    return functools.partial(tqdm, unit=unit, total=total, file=sys.stderr, dynamic_ncols=True)


# ---------------------------------------------------------------- sources: what a build writes

@dataclasses.dataclass
class _Source:
    """One dataset to build: its fingerprint, annotations, manifest extras, and a stream of examples per split."""

    fingerprint: str
    annotated: bool
    total: int
    examples: Callable[[int, Callable], Iterator[dict]]  # (split index, mapper) -> examples
    extra: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)
    describe: str = ""


def _synthetic_source(spec: DataSpec) -> _Source:
    from data.splits import strata_of
    from data.synthetic import source_of

    n = spec.num_images if spec.subset is None else min(spec.num_images, spec.subset * len(spec.classes))
    draw = source_of(spec)
    ids = np.array([draw.image_id(i) for i in range(n)])
    labels = np.arange(n) % len(spec.classes)
    sites = [draw.site(i).name for i in range(n)] if spec.split_strata == "source_class" else None
    strata, to_test = strata_of(labels, sites, spec.rare_to_test)
    split_of = grouped_split(labels, ids, spec.split_fractions, spec.split_seed, strata=strata, to_test=to_test)

    def examples(split: int, mapper: Callable) -> Iterator[dict]:
        for example in mapper(draw, np.nonzero(split_of == split)[0].tolist()):
            yield {**example, "group": example["id"]}  # each synthetic image is its own patient

    return _Source(f"synthetic-v{FORMAT_VERSION}", True, n, examples,
                   describe=f"generating {n} synthetic images at {spec.image_size}px")


def _radiography_source(spec: DataSpec, root: Path, progress: bool) -> _Source:
    from data import radiography
    from data.fingerprint import content_hashes

    scanned = radiography.scan(spec.data_dir, spec.classes)
    _say(progress, f"found {len(scanned.files)} images ({scanned.layout} layout) under {scanned.root}")
    hashes = functools.partial(content_hashes, source_root=scanned.root, cache_root=root,
                               progress=_progress_bar(progress, "files"))
    plan = radiography.plan(scanned, fractions=spec.split_fractions, split_seed=spec.split_seed, subset=spec.subset,
                            hashes=hashes, strata=spec.split_strata, rare_to_test=spec.rare_to_test)
    bad: list[str] = []

    def examples(split: int, mapper: Callable) -> Iterator[dict]:
        yield from radiography.examples(plan, split, image_size=spec.image_size, skip_bad=spec.skip_bad, bad=bad,
                                        mapper=mapper)

    extra = {"layout": scanned.layout, "bad_files": bad, "with_patient_id": plan.with_patient_id}
    return _Source(plan.fingerprint(), False, len(plan.files), examples, extra, scanned.notes,
                   f"reading {len(plan.files)} images from {scanned.root}")


# ---------------------------------------------------------------- prepare

def prepare(spec: DataSpec, *, progress: bool = False, workers: int | None = None) -> PreparedDataset:
    """Prepare `spec` (or reuse its cached copy) and return it. Errors in the input are raised before anything is
    written; a build goes to a `.building-*` folder renamed into place at the end, so an interrupted build leaves
    nothing a later run would read. `workers`: processes that decode or draw images (default: the available cores
    from PARALLEL_FROM images on). They are spawned, so a script calling this keeps the call under
    `if __name__ == "__main__":` (or passes workers=1)."""
    validate(spec)
    root = cache_root(spec)
    source = _radiography_source(spec, root, progress) if spec.source == "radiography" else _synthetic_source(spec)
    for note in source.notes:
        _say(progress, f"note: {note}")
    final = root / f"{spec.source}-{cache_key(spec, source.fingerprint)}"
    if (final / MANIFEST).is_file():
        _say(progress, f"reusing prepared dataset {final}")
        return PreparedDataset(final)
    _check_writable(root)
    say_wait = functools.partial(_say, True, f"waiting: another process is preparing {final}")
    with locking.exclusive(locking.lock_path(root, final.name), on_wait=say_wait) as held:
        if (final / MANIFEST).is_file():  # built by the process we waited for
            _say(progress, f"reusing prepared dataset {final}")
            return PreparedDataset(final)
        if held:
            for stale in locking.remove_stale_builds(root, final.name):
                _say(progress, f"removed {stale.name}, left by a build that did not finish")
        _build_into(final, source, spec, progress, workers)
    _say(progress, f"prepared {final}")
    return PreparedDataset(final)


def open_prepared(path: str | os.PathLike | None, spec: DataSpec) -> PreparedDataset | None:
    """The finished dataset at `path` if this machine sees one there (e.g. a cache every node mounts) and it was
    prepared from `spec`, else None; a damaged one raises. Lets Ray trials read what the driver prepared without
    the source images."""
    if path is None or not (Path(path) / MANIFEST).is_file():
        return None
    dataset = PreparedDataset(Path(path))
    same = {k: v for k, v in _spec_json(spec).items() if k != "cache_dir"}
    return dataset if {k: v for k, v in dataset.manifest["spec"].items() if k != "cache_dir"} == same else None


def _check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise CacheNotWritable(
            f"cache folder {str(root)!r} is not writable ({err.strerror or err}): pass a writable folder with "
            f"--data-dir-cache or FUSION_SWEEP_CACHE, or prepare the dataset there once from a machine that can "
            f"write it") from None


def _build_into(final: Path, source: _Source, spec: DataSpec, progress: bool, workers: int | None) -> None:
    tmp = locking.shareable(Path(tempfile.mkdtemp(prefix=f"{locking.BUILDING_PREFIX}{final.name}-", dir=final.parent)))
    try:
        _say(progress, source.describe)
        counts = _write_records(tmp, source, spec, progress, workers)
        manifest = {"format": FORMAT_VERSION, "source": spec.source, "fingerprint": source.fingerprint,
                    "classes": list(spec.classes), "image_size": spec.image_size, "counts": counts,
                    "has_annotations": source.annotated, "spec": _spec_json(spec), **source.extra,
                    "files": {p.relative_to(tmp).as_posix(): p.stat().st_size for p in _all_files(tmp)}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))  # last: a folder without it is never read
        if final.exists():  # a copy without a manifest (never readable): safe to replace, we hold the lock
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_records(tmp: Path, source: _Source, spec: DataSpec, progress: bool, workers: int | None) -> dict:
    """Stream every split into array_record shards and index/<split>.npz; returns {split: {class: count}}."""
    data_dir = tfds_dir(tmp)
    data_dir.mkdir(parents=True)
    (tmp / "index").mkdir()
    schema = features(spec.image_size, source.annotated)
    example_bytes = spec.image_size ** 2 * (2 if source.annotated else 1) + 256
    workers = workers if workers is not None else (available_cores() if source.total >= PARALLEL_FROM else 1)
    bar = _progress_bar(progress, "images", source.total)
    bar = bar() if bar else None  # updated by hand, one image at a time
    infos, counts = [], {}
    try:
        with ordered_mapper(workers) as mapper:
            for s, split in enumerate(SPLITS):
                writer = SplitWriter(data_dir, split, schema, example_bytes)
                index = _write_split(writer, source.examples(s, mapper), bar)
                if not index["labels"]:
                    raise ValueError(f"the {split} split is empty (every image of it was unreadable)")
                infos.append(writer.close())
                _save_index(tmp / "index" / f"{split}.npz", index)
                labels = np.asarray(index["labels"])
                counts[split] = {c: int(np.sum(labels == i)) for i, c in enumerate(spec.classes)}
    finally:
        if bar is not None:
            bar.close()
    write_metadata(data_dir, schema, infos)
    return counts


INDEX_FIELDS = {"labels": "label", "ids": "id", "groups": "group", "marker_boxes": "marker_box"}


def _write_split(writer: SplitWriter, examples: Iterator[dict], bar) -> dict[str, list]:
    """Write each example as it comes; keep only its small per-record fields (the index)."""
    index: dict[str, list] = {key: [] for key in INDEX_FIELDS}
    for example in examples:
        writer.write(example)
        for key, field in INDEX_FIELDS.items():
            if field in example:
                index[key].append(example[field])
        if bar is not None:
            bar.update(1)
    return index


def _save_index(path: Path, index: dict) -> None:
    arrays = {"labels": np.asarray(index["labels"], np.int32), "ids": np.asarray(index["ids"], dtype=str),
              "groups": np.asarray(index["groups"], dtype=str)}
    if index["marker_boxes"]:
        arrays["marker_boxes"] = np.asarray(index["marker_boxes"], np.int32).reshape(-1, 4)
    np.savez(path, **arrays)


def _all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _spec_json(spec: DataSpec) -> dict:
    """The spec as its manifest stores it (tuples as lists, at every depth: sites hold tuples too)."""
    return json.loads(json.dumps(dataclasses.asdict(spec)))
