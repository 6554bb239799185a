"""prepare(): build a dataset once into the cache as a TFDS array_record dataset (atomically), or reuse it."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from data.prepared import MANIFEST, TFDS_NAME, PreparedDataset
from data.spec import DataSpec
from data.splits import SPLITS, check_fractions, grouped_split

FORMAT_VERSION = 1  # bump when the stored layout or the preparation changes
SOURCES = ("synthetic", "radiography")


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
        from data.synthetic import class_patterns

        class_patterns(spec.classes)
        if spec.num_images < 3 * len(spec.classes):
            raise ValueError(f"num_images={spec.num_images} is too few for three splits of {len(spec.classes)} classes")


def cache_key(spec: DataSpec, fingerprint: str) -> str:
    """Everything that changes the prepared arrays, hashed."""
    fields = {
        "format": FORMAT_VERSION, "source": spec.source, "fingerprint": fingerprint, "classes": list(spec.classes),
        "image_size": spec.image_size, "split_fractions": list(spec.split_fractions), "split_seed": spec.split_seed,
        "subset": spec.subset, "skip_bad": spec.skip_bad,
    }
    if spec.source == "synthetic":
        fields.update(num_images=spec.num_images, difficulty=spec.difficulty, synthetic_seed=spec.synthetic_seed,
                      marker_rate=None if spec.marker_rate is None else list(spec.marker_rate),
                      intensity_shift=None if spec.intensity_shift is None else list(spec.intensity_shift))
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def prepare(spec: DataSpec, *, progress: bool = False) -> PreparedDataset:
    """Prepare `spec` (or reuse its cached copy) and return it. Errors in the input are raised before anything is
    written; a build goes to a temporary folder renamed into place at the end, so an interrupted build leaves
    nothing a later run would read."""
    validate(spec)
    scanned = None
    if spec.source == "radiography":
        from data import radiography

        scanned = radiography.scan(spec.data_dir, spec.classes)
        for note in scanned.notes:
            _say(progress, f"note: {note}")
        fingerprint = scanned.fingerprint()
    else:
        fingerprint = f"synthetic-v{FORMAT_VERSION}"
    root = cache_root(spec)
    final = root / f"{spec.source}-{cache_key(spec, fingerprint)}"
    if (final / MANIFEST).is_file():
        _say(progress, f"reusing prepared dataset {final}")
        return PreparedDataset(final)

    extra: dict = {}
    if spec.source == "radiography":
        _say(progress, f"reading {len(scanned.files)} images ({scanned.layout} layout) from {scanned.root}")
        loaded = radiography.load(scanned, image_size=spec.image_size, fractions=spec.split_fractions,
                                  split_seed=spec.split_seed, subset=spec.subset, skip_bad=spec.skip_bad,
                                  progress=_progress_bar(progress, "images"))
        splits, extra = loaded["splits"], {"layout": scanned.layout, "bad_files": loaded["bad"],
                                           "with_patient_id": loaded["with_patient_id"]}
        if loaded["bad"]:
            _say(progress, f"skipped {len(loaded['bad'])} unreadable image(s): {', '.join(loaded['bad'][:10])}")
    else:
        _say(progress, f"generating {spec.num_images} synthetic images at {spec.image_size}px")
        splits = _synthetic_splits(spec)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".building-{final.name}-", dir=root))
    try:
        _say(progress, "writing array_record files")
        _write_tfds(tmp / "tfds", splits, spec.image_size, annotated=spec.source == "synthetic")
        counts = {s: {c: int(np.sum(splits[s]["labels"] == i)) for i, c in enumerate(spec.classes)} for s in SPLITS}
        manifest = {"format": FORMAT_VERSION, "source": spec.source, "fingerprint": fingerprint,
                    "classes": list(spec.classes), "image_size": spec.image_size, "counts": counts,
                    "has_annotations": spec.source == "synthetic", "spec": _spec_json(spec), **extra}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MANIFEST).is_file():  # not a concurrent build that finished first
                if final.exists():
                    shutil.rmtree(final)  # leftover without a manifest: never readable, safe to replace
                os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _say(progress, f"prepared {final}")
    return PreparedDataset(final)


def _spec_json(spec: DataSpec) -> dict:
    import dataclasses

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(spec).items()}


def _progress_bar(enabled: bool, unit: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return functools.partial(tqdm, unit=unit, file=sys.stderr, dynamic_ncols=True)


def _synthetic_splits(spec: DataSpec) -> dict:
    from data import synthetic

    n = spec.num_images if spec.subset is None else min(spec.num_images, spec.subset * len(spec.classes))
    d = synthetic.generate(n, image_size=spec.image_size, classes=spec.classes, seed=spec.synthetic_seed,
                           difficulty=spec.difficulty, marker_rate=spec.marker_rate,
                           intensity_shift=spec.intensity_shift)
    groups = d["ids"]  # each synthetic image is its own patient
    split_of = grouped_split(d["labels"], groups, spec.split_fractions, spec.split_seed)
    out = {}
    for s, name in enumerate(SPLITS):
        rows = np.nonzero(split_of == s)[0]
        out[name] = {"images": d["images"][rows], "labels": d["labels"][rows], "ids": d["ids"][rows],
                     "groups": groups[rows], "lesion_masks": d["lesion_masks"][rows],
                     "marker_boxes": d["marker_boxes"][rows]}
    return out


@functools.lru_cache(maxsize=None)
def _builder_class():
    """The TFDS builder, defined on first use (tensorflow_datasets is imported only here)."""
    import tensorflow_datasets as tfds

    class FusionSweepCxr(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Prepared grey uint8 images; stored as tfds Tensor features (TFDS' Image feature needs TensorFlow)."""

        name = TFDS_NAME
        code_path = None  # no checksums file to look for (TFDS' lookup needs importlib_resources for local classes)
        VERSION = tfds.core.Version("1.0.0")

        def __init__(self, *, splits: dict, image_size: int, annotated: bool, **kwargs):
            self._split_arrays, self._size, self._annotated = splits, image_size, annotated
            super().__init__(**kwargs)

        def _info(self):
            s = self._size
            raw = tfds.features.Encoding.BYTES  # plain bytes: the default upcasts every pixel to int64
            features = {
                "image": tfds.features.Tensor(shape=(s, s), dtype=np.uint8, encoding=raw),
                "label": tfds.features.Tensor(shape=(), dtype=np.int32),
                "order": tfds.features.Tensor(shape=(), dtype=np.int64),
                "id": tfds.features.Text(),
                "group": tfds.features.Text(),
            }
            if self._annotated:
                features["lesion_mask"] = tfds.features.Tensor(shape=(s, s), dtype=np.bool_, encoding=raw)
                features["marker_box"] = tfds.features.Tensor(shape=(4,), dtype=np.int32)
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features),
                                         disable_shuffling=True)

        def _split_generators(self, dl_manager):
            return {name: self._generate_examples(name) for name in SPLITS}

        def _generate_examples(self, split):
            a = self._split_arrays[split]
            for i in range(len(a["labels"])):
                example = {"image": a["images"][i], "label": int(a["labels"][i]), "order": i,
                           "id": str(a["ids"][i]), "group": str(a["groups"][i])}
                if self._annotated:
                    example["lesion_mask"] = a["lesion_masks"][i]
                    example["marker_box"] = a["marker_boxes"][i]
                yield i, example

    return FusionSweepCxr


def _write_tfds(data_dir: Path, splits: dict, image_size: int, *, annotated: bool) -> None:
    import tensorflow_datasets as tfds

    builder = _builder_class()(splits=splits, image_size=image_size, annotated=annotated, data_dir=str(data_dir),
                               file_format="array_record")
    tfds.display_progress_bar(False)
    with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints banners we do not want mixed into our output
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    shutil.rmtree(data_dir / "downloads", ignore_errors=True)
