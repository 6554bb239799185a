"""Evaluation-only image sets, prepared once per sweep: external folders (another hospital's films) and synthetic
sites, resized by the one resize every image goes through, stored in the dataset cache as one .npz per set.

A folder's class folders (`<class>/images/` as in the Kaggle database, or `<class>/` with the images below) are
matched to the model's classes by name, ignoring case, spaces, '-' and '_'; a class the models do not know, a
folder without images and an image that does not decode are errors that name the folder or file, raised before
any training. A set may lack some of the model's classes (its balanced accuracy and AUC are then NaN).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from data.prepared import SplitArrays
from data.spec import DataSpec, ExternalSpec

NAME = re.compile(r"[a-z0-9_]+")
FORMAT = 2  # bump when what a stored set holds, or how it is keyed, changes (2: content-hash fingerprints)


def check_name(name: str) -> str:
    """A set's NAME: it becomes part of column names (ext_<NAME>_accuracy), so only [a-z0-9_]+."""
    if not NAME.fullmatch(name or ""):
        raise ValueError(f"external set name {name!r} is not valid: use lower-case letters, digits and _ "
                         "(it becomes the trials.csv columns ext_<NAME>_*)")
    return name


@dataclasses.dataclass(frozen=True)
class FolderImage:
    path: Path
    image_id: str  # path relative to the folder (posix): the key metadata.csv joins on
    label: int


def scan_folder(data_dir: str | os.PathLike, classes: Sequence[str], name: str = "") -> list[FolderImage]:
    """Every image of an external folder with its class index in `classes`; nothing is decoded yet."""
    from data.radiography import _images_under, _norm, _subdirs

    root = Path(data_dir).expanduser()
    what = f"external set {name!r} folder {str(root)!r}" if name else f"external folder {str(root)!r}"
    if not root.is_dir():
        raise FileNotFoundError(f"{what} does not exist or is not a folder")
    known = {_norm(c): i for i, c in enumerate(classes)}
    folders = _subdirs(root)
    unknown = [d.name for d in folders if _norm(d.name) not in known]
    if unknown:
        raise ValueError(f"{what}: folder(s) {', '.join(map(repr, unknown))} name no class the models know "
                         f"({', '.join(classes)}); an external set holds one folder per known class")
    images = [FolderImage(p, p.relative_to(root).as_posix(), known[_norm(d.name)])
              for d in folders for p in _images_under(d)]
    if not images:
        raise ValueError(f"{what} holds no images (.png/.jpg/.jpeg under <class>/images/ or <class>/ for a class "
                         f"in {', '.join(classes)})")
    return images


def _fingerprint(images: list[FolderImage], root: Path, data: DataSpec) -> str:
    """The folder's content: each image's id, class and content hash (data.fingerprint, cached by size, mtime and
    ctime beside the dataset's), so a re-exported copy is not prepared again and a changed image always is."""
    from data.builder import cache_root
    from data.fingerprint import content_hashes

    hashes = content_hashes([f.image_id for f in images], root, cache_root(data))
    h = hashlib.sha256()
    for f, digest in zip(images, hashes):
        h.update(f"{f.image_id}|{f.label}|{digest}\n".encode())
    return h.hexdigest()[:16]


def _load_folder(images: list[FolderImage], image_size: int, name: str,
                 patients: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    from data.images import resize_image
    from data.radiography import decode_grey

    pixels = []
    for f in images:
        try:
            pixels.append(resize_image(decode_grey(f.path.read_bytes(), f.image_id), image_size))
        except ValueError as err:
            raise ValueError(f"external set {name!r}: {err} ({f.path})") from None
    ids = np.array([f.image_id for f in images], dtype=str)
    # the patient of each image from the folder's metadata.csv (films of one patient are resampled together);
    # an image it does not name is its own patient
    groups = np.array([(patients or {}).get(i) or i for i in ids], dtype=str)
    return {"images": np.stack(pixels), "labels": np.array([f.label for f in images], np.int32), "ids": ids,
            "groups": groups}


def plan(name: str, spec: ExternalSpec, data: DataSpec) -> tuple[str, Callable[[], dict]]:
    """(cache key, a function that builds the set's arrays) of one external set; checks its input cheaply now."""
    check_name(name)
    if spec.source == "radiography":
        if not spec.data_dir:
            raise ValueError(f"external set {name!r} needs a folder (NAME=DIR)")
        from data.metadata import image_patients

        images = scan_folder(spec.data_dir, data.classes, name)
        patients = image_patients(spec.data_dir)
        key = {"source": "radiography", "files": _fingerprint(images, Path(spec.data_dir).expanduser(), data),
               "patients": hashlib.sha256(json.dumps(sorted(patients.items())).encode()).hexdigest()[:16]}
        return cache_key(key, data), lambda: _load_folder(images, data.image_size, name, patients)
    if spec.source == "synthetic":
        from data.sites import check_site
        from data.synthetic import draw_site

        check_site(spec.site, len(data.classes), f"external set {name!r}")
        if spec.num_images < 1:
            raise ValueError(f"external set {name!r}: num_images must be >= 1, got {spec.num_images}")
        key = {"source": "synthetic", "site": dataclasses.asdict(spec.site), "n": spec.num_images, "name": name,
               "difficulty": data.difficulty, "seed": data.synthetic_seed}
        return cache_key(key, data), lambda: draw_site(data, spec.site, spec.num_images, name)
    raise ValueError(f"external set {name!r}: source must be radiography or synthetic, got {spec.source!r}")


def cache_key(fields: dict, data: DataSpec) -> str:
    """A stored set's name: its own fields plus the classes and image size it was prepared for, hashed."""
    fields = {**fields, "format": FORMAT, "classes": list(data.classes), "image_size": data.image_size}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=list).encode()).hexdigest()[:16]


def prepare_sets(sets: dict[str, ExternalSpec], data: DataSpec, cache_dir: str | os.PathLike) -> dict[str, Path]:
    """NAME -> the .npz of each set in `cache_dir` (built when absent). Every set is checked before any is built."""
    plans = {name: plan(name, spec, data) for name, spec in sets.items()}
    out = {}
    for name, (key, build) in plans.items():
        path = Path(cache_dir) / f"eval-{key}.npz"
        if not path.is_file():
            save(path, build())
        out[name] = path
    return out


def save(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write an evaluation set atomically (through the project's one atomic writer)."""
    from models.files import write_bytes_atomic

    buffer = io.BytesIO()
    np.savez(buffer, **{k: v for k, v in arrays.items() if v is not None})
    return write_bytes_atomic(path, buffer.getvalue())


def load(path: str | os.PathLike) -> SplitArrays:
    """An evaluation set as in-memory split arrays (what the pipeline and evaluation read)."""
    with np.load(path, allow_pickle=False) as stored:
        return SplitArrays(images=stored["images"], labels=stored["labels"].astype(np.int32), ids=stored["ids"],
                           groups=stored["groups"],
                           marker_boxes=stored["marker_boxes"] if "marker_boxes" in stored else None)


def class_counts(path: str | os.PathLike, classes: Sequence[str]) -> dict[str, int]:
    with np.load(path, allow_pickle=False) as stored:
        counts = np.bincount(stored["labels"], minlength=len(classes))
    return {c: int(counts[i]) for i, c in enumerate(classes)}
