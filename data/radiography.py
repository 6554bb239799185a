"""Scan and load chest X-ray folders: the Kaggle COVID-19 Radiography Database layout, the seed's split folders, or any
folder-per-class tree; patient-grouped (metadata.csv) or duplicate-grouped splits."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from data.fingerprint import file_hash
from data.images import resize_image
from data.splits import SPLITS, grouped_split, merge_groups, strata_of

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# the seed's hand-made split folders (case-insensitive) -> our split names
SEED_SPLIT_FOLDERS = {"train": "train", "training": "train", "validation": "val", "val": "val", "valid": "val",
                      "test": "test", "testing": "test"}
IGNORED_FOLDERS = {"masks", "mask"}


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


@dataclasses.dataclass(frozen=True)
class ImageFile:
    path: Path
    relpath: str  # posix, relative to the data dir (the image's stable id)
    label: int
    split: int | None  # from the seed's folders, else None (assigned later)


@dataclasses.dataclass
class Scan:
    root: Path
    layout: str  # "kaggle", "seed-splits" or "folder-per-class"
    files: list[ImageFile]
    patient_of: dict[str, str]  # relpath -> patient_id from metadata.csv (empty when none)
    notes: list[str]


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_under(folder: Path) -> list[Path]:
    """Image files under a class folder: its images/ subfolder when present (Kaggle), else everything below it
    except masks/ folders."""
    images_dir = next((d for d in _subdirs(folder) if d.name.lower() == "images"), None)
    base = images_dir or folder
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d.lower() not in IGNORED_FOLDERS and not d.startswith("."))
        out.extend(Path(dirpath) / name for name in sorted(filenames) if name.lower().endswith(IMAGE_SUFFIXES))
    return out


def _match_classes(parent: Path, classes: Sequence[str], where: str) -> list[Path]:
    found = _subdirs(parent)
    by_norm = {_norm(d.name): d for d in found}
    missing = [c for c in classes if _norm(c) not in by_norm]
    if missing:
        names = ", ".join(repr(d.name) for d in found) or "none"
        raise FileNotFoundError(f"no folder for class(es) {', '.join(map(repr, missing))} in {where}; folders found: {names}")
    return [by_norm[_norm(c)] for c in classes]


def scan(data_dir: str | os.PathLike | None, classes: Sequence[str]) -> Scan:
    """Find the chosen classes' images and the layout; raises before any image is read."""
    if not data_dir:
        raise ValueError("radiography data needs a data dir (--data-dir): the folder you downloaded")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data dir {str(root)!r} does not exist or is not a folder")
    if not classes or len({_norm(c) for c in classes}) != len(classes):
        raise ValueError(f"classes must be non-empty and distinct, got {tuple(classes)}")
    notes: list[str] = []
    top = {d.name.lower(): d for d in _subdirs(root)}
    split_dirs = {SEED_SPLIT_FOLDERS[name]: d for name, d in top.items() if name in SEED_SPLIT_FOLDERS}
    files: list[ImageFile] = []
    if set(split_dirs) == set(SPLITS):
        layout = "seed-splits"
        for s, split in enumerate(SPLITS):
            folder = split_dirs[split]
            for label, class_dir in enumerate(_match_classes(folder, classes, f"{str(folder)!r}")):
                files += [ImageFile(p, p.relative_to(root).as_posix(), label, s) for p in _images_under(class_dir)]
    else:
        if split_dirs and not set(split_dirs) >= set(SPLITS):
            notes.append(f"split folders {sorted(split_dirs)} found but not all of train/validation/test; "
                         "treating them as ordinary folders")
        class_dirs = _match_classes(root, classes, f"data dir {str(root)!r}")
        layout = "kaggle" if all(any(d.name.lower() == "images" for d in _subdirs(c)) for c in class_dirs) \
            else "folder-per-class"
        for label, class_dir in enumerate(class_dirs):
            files += [ImageFile(p, p.relative_to(root).as_posix(), label, None) for p in _images_under(class_dir)]
    counts = np.bincount([f.label for f in files], minlength=len(classes))
    empty = [classes[i] for i in range(len(classes)) if counts[i] == 0]
    if empty:
        raise ValueError(f"class(es) {', '.join(map(repr, empty))} have no images ({'/'.join(IMAGE_SUFFIXES)}) "
                         f"under {str(root)!r}")
    return Scan(root, layout, files, _read_metadata(root, notes), notes)


def _read_metadata(root: Path, notes: list[str]) -> dict[str, str]:
    """relpath -> patient_id from <root>/metadata.csv (columns file, patient_id); rows naming missing files raise."""
    meta = root / "metadata.csv"
    if not meta.is_file():
        return {}
    with open(meta, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        if "file" not in fields or "patient_id" not in fields:
            notes.append(f"{meta.name} has no 'file' and 'patient_id' columns (has {fields}); grouping by content")
            return {}
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    missing = [r["file"] for r in rows if not (root / r["file"]).is_file()]
    if missing:
        raise ValueError(f"{str(meta)!r}: {len(missing)} of {len(rows)} rows name files that do not exist, "
                         f"e.g. {', '.join(map(repr, missing[:5]))}")
    return {Path(r["file"]).as_posix(): r["patient_id"] for r in rows if r["patient_id"]}


def decode_grey(data: bytes, name: str) -> np.ndarray:
    """Decode PNG/JPEG bytes to a 2-D uint8 grey image; raises ValueError naming the file when it is unreadable."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # full decode: truncated files fail here, not later
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                hi = arr.max() if arr.max() > 0 else 1.0
                return np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise ValueError(f"unreadable image {name!r}: {err}") from None


def choose_subset(files: list[ImageFile], subset: int | None, split_seed: int) -> list[ImageFile]:
    """At most `subset` files per class, drawn by split_seed (all files when subset is None)."""
    if subset is None:
        return list(files)
    rng = np.random.default_rng((split_seed, 0x50B5E7))
    keep = []
    for label in sorted({f.label for f in files}):
        members = [f for f in files if f.label == label]
        chosen = sorted(rng.choice(len(members), size=min(subset, len(members)), replace=False))
        keep += [members[i] for i in chosen]
    return keep


@dataclasses.dataclass
class Plan:
    """What a radiography build will write, decided from file names and content hashes before any image is decoded."""

    scan: Scan
    files: list[ImageFile]
    hashes: list[str]  # content hash per file
    groups: np.ndarray  # patient or duplicate group per file
    split_of: np.ndarray  # 0 train, 1 val, 2 test per file
    with_patient_id: int

    def fingerprint(self) -> str:
        """Identity of the source: layout, every file's path, class, split folder and content hash, metadata.csv."""
        h = hashlib.sha256(self.scan.layout.encode())
        for f in self.scan.files:
            h.update(f"{f.relpath}|{f.label}|{f.split}\n".encode())
        for f, digest in zip(self.files, self.hashes):
            h.update(f"{f.relpath}={digest}\n".encode())
        meta = self.scan.root / "metadata.csv"
        if meta.is_file():
            h.update(meta.read_bytes())
        return h.hexdigest()[:16]

    def rows(self, split: int) -> np.ndarray:
        return np.nonzero(self.split_of == split)[0]


def plan(scan_result: Scan, *, fractions: Sequence[float], split_seed: int, subset: int | None,
         hashes: Callable[[list[str]], list[str]], strata: str = "class", rare_to_test: int = 0) -> Plan:
    """Choose the files (subset), group them (patient id from metadata.csv, and identical content) and split the
    groups, stratified by class or by (source, class) from metadata.csv's source column (rare cells of at most
    rare_to_test images wholly to test). `hashes(relpaths)` returns their content hashes (data.fingerprint
    caches them)."""
    files = choose_subset(scan_result.files, subset, split_seed)
    digests = hashes([f.relpath for f in files])
    labels = np.array([f.label for f in files], np.int32)
    patients = [scan_result.patient_of.get(f.relpath, "") for f in files]
    patient_keys = [f"patient:{p}" if p else f"image:{h}" for p, h in zip(patients, digests)]
    groups = merge_groups(patient_keys, [f"image:{h}" for h in digests])
    if all(f.split is not None for f in files):
        split_of = np.array([f.split for f in files])
    else:
        sources = _sources(scan_result.root, files) if strata == "source_class" else None
        cells, to_test = strata_of(labels, sources, rare_to_test)
        split_of = grouped_split(labels, groups, fractions, split_seed, strata=cells, to_test=to_test)
    for s, name in enumerate(SPLITS):
        if not np.any(split_of == s):
            raise ValueError(f"the {name} split is empty under {str(scan_result.root)!r}")
    return Plan(scan_result, files, digests, groups, split_of, sum(1 for p in patients if p))


def _sources(root: Path, files: list[ImageFile]) -> list[str]:
    """Each file's source from metadata.csv (for split_strata='source_class'); a folder without one is refused."""
    from data.metadata import SOURCE_COLUMNS, image_sources

    sources = image_sources(root)
    if not sources:
        raise ValueError(f"split_strata='source_class' needs a metadata.csv with 'file' and a source column "
                         f"({' or '.join(SOURCE_COLUMNS)}) in {str(root)!r}; use split_strata='class'")
    return [sources.get(f.relpath, "(unknown)") for f in files]


@dataclasses.dataclass(frozen=True)
class ImageLoader:
    """Reads, checks and resizes one planned file (picklable, for worker processes). Returns the uint8 image, or
    ('unreadable' | 'changed', message)."""

    root: Path
    image_size: int

    def __call__(self, item: tuple[str, str]) -> np.ndarray | tuple[str, str]:
        relpath, digest = item
        data = (self.root / relpath).read_bytes()
        if file_hash(data) != digest:
            return "changed", f"{relpath!r} changed while it was being prepared; run the command again"
        try:
            return resize_image(decode_grey(data, relpath), self.image_size)
        except ValueError as err:
            return "unreadable", str(err)


def examples(plan_: Plan, split: int, *, image_size: int, skip_bad: bool, bad: list[str],
             mapper: Callable = map) -> Iterator[dict]:
    """The split's examples in file order, decoded one at a time (`mapper` may run ImageLoader in worker processes).
    An unreadable image raises naming the file, unless skip_bad: then it is left out and appended to `bad`."""
    rows = plan_.rows(split)
    loader = ImageLoader(plan_.scan.root, image_size)
    loaded = mapper(loader, [(plan_.files[i].relpath, plan_.hashes[i]) for i in rows])
    for i, image in zip(rows, loaded):
        f = plan_.files[i]
        if isinstance(image, tuple):
            kind, message = image
            if kind == "changed" or not skip_bad:
                hint = "" if kind == "changed" else "; use --skip-bad to skip such files"
                raise ValueError(f"{message} (under {str(plan_.scan.root)!r}{hint})")
            bad.append(f.relpath)
            continue
        yield {"image": image, "label": f.label, "id": f.relpath, "group": str(plan_.groups[i])}
