"""A prepared dataset on disk and its splits: labels, ids and groups in memory, images read on demand from disk.

Layout of a prepared folder (written by data.builder, renamed into place only when complete):
    prepared.json         manifest: classes, image size, counts, the size of every data file
    index/<split>.npz     per-record labels, ids, groups (and marker boxes): small, loaded whole
    tfds/fusion_sweep_cxr/1.0.0/   the TFDS dataset (array_record shards, dataset_info.json, features.json)
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from data.records import DatasetDamaged, RecordReader, damaged, tfds_dir
from data.splits import SPLITS

MANIFEST = "prepared.json"
FORMAT_VERSION = 2  # bump when the stored layout or the preparation changes (it keys the cache)


@dataclasses.dataclass
class SplitArrays:
    """One split held in memory (tests, small generated sets). Row i of every array is the same example; the
    pipeline accepts it wherever it accepts a prepared split."""

    images: np.ndarray  # (N,H,W) uint8 grey
    labels: np.ndarray  # (N,) int32
    ids: np.ndarray  # (N,) str: stable image ids (relative file path, or 'synthetic-000123')
    groups: np.ndarray  # (N,) str: patient / group id (never shared between splits)
    lesion_masks: np.ndarray | None = None  # (N,H,W) bool, synthetic only
    marker_boxes: np.ndarray | None = None  # (N,4) int32 [y0,x0,y1,x1), -1 when no marker; synthetic only

    def __len__(self) -> int:
        return len(self.labels)


class RecordColumn:
    """One per-record array of a split on disk (images or lesion masks), indexed like a numpy array:
    column[i], column[rows], column[a:b], column[bool_mask] read just those records, and column[rows, ...] indexes
    the result further. np.asarray(column) and column[...] read the whole split: for small splits only."""

    def __init__(self, reader: RecordReader, field: str, length: int, dtype):
        self.reader, self.field, self.dtype = reader, field, np.dtype(dtype)
        self.shape = (length, reader.image_size, reader.image_size)
        self.ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):  # rows first, then numpy indexing of what was read
            if not key or key[0] is Ellipsis:
                return self[:][key]
            rows = self[key[0]]
            return rows[key[1:]] if isinstance(key[0], (int, np.integer)) else rows[(slice(None),) + key[1:]]
        if key is Ellipsis:
            return self[:]
        if isinstance(key, (int, np.integer)):
            n = len(self)
            if not -n <= key < n:
                raise IndexError(f"row {key} is out of range for a split of {n} records")
            return self.reader.read([int(key) % n], (self.field,))[self.field][0]
        if isinstance(key, slice):
            rows = np.arange(len(self))[key]
        else:
            rows = np.asarray(key)
            if rows.dtype == bool:
                rows = np.nonzero(rows)[0]
            if rows.size and (rows.min() < -len(self) or rows.max() >= len(self)):
                raise IndexError(f"rows out of range for a split of {len(self)} records")
            rows = rows % max(len(self), 1)
        return self.reader.read(rows.reshape(-1), (self.field,))[self.field].reshape(rows.shape + self.shape[1:])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class PreparedSplit:
    """One split of a prepared dataset: len(), labels, ids, groups (and marker_boxes) in memory; images (and
    lesion_masks) as RecordColumns that read from disk. Memory does not grow with the images in the split."""

    def __init__(self, dataset_path: Path, name: str, image_size: int, annotated: bool):
        self.name = name
        index_path = Path(dataset_path) / "index" / f"{name}.npz"
        try:
            with np.load(index_path, allow_pickle=False) as index:
                self.labels = index["labels"].astype(np.int32)
                self.ids, self.groups = index["ids"], index["groups"]
                self.marker_boxes = index["marker_boxes"] if annotated else None
        except (OSError, KeyError, ValueError) as err:
            raise damaged(dataset_path, f"its index {index_path.name} cannot be read ({err})") from None
        self.reader = RecordReader(dataset_path, name, image_size)
        self.images = RecordColumn(self.reader, "image", len(self.labels), np.uint8)
        self.lesion_masks = RecordColumn(self.reader, "lesion_mask", len(self.labels), bool) if annotated else None

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"PreparedSplit({self.name!r}, {len(self)} images, {self.reader.dataset_path})"

    def read(self, rows: Sequence[int], fields: Sequence[str] = ("image",)) -> dict[str, np.ndarray]:
        """{field: rows' values} in one pass over the records; fields from data.records (image, lesion_mask, ...)."""
        return self.reader.read(rows, fields)


class PreparedDataset:
    """What prepare() returns: the manifest's metadata, and splits opened on demand. Opening checks that every data
    file the manifest lists is there with its full size, so a truncated copy fails here with one clear line."""

    def __init__(self, path: Path):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise DatasetDamaged(f"{str(self.path)!r} is not a finished prepared dataset (no {MANIFEST}): a build was "
                                 f"interrupted or the folder is not one; delete it and run `fusion-sweep data prepare`")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as err:
            raise damaged(self.path, f"{MANIFEST} cannot be read ({err})") from None
        if manifest.get("format") != FORMAT_VERSION:
            raise DatasetDamaged(f"{str(self.path)!r} was prepared in format {manifest.get('format')}, this version "
                                 f"reads format {FORMAT_VERSION}: run `fusion-sweep data prepare` again")
        self.manifest = manifest
        self.classes: tuple[str, ...] = tuple(manifest["classes"])
        self.image_size: int = int(manifest["image_size"])
        self.fingerprint: str = manifest["fingerprint"]
        self.source: str = manifest["source"]
        self._check_files()
        self._splits: dict[str, PreparedSplit] = {}

    def __repr__(self) -> str:
        return f"PreparedDataset({self.source}, classes={self.classes}, size={self.image_size}, path={str(self.path)!r})"

    def _check_files(self) -> None:
        for relpath, size in self.manifest["files"].items():
            path = self.path / relpath
            actual = path.stat().st_size if path.is_file() else None
            if actual != size:
                what = "is missing" if actual is None else f"has {actual} bytes, {size} expected (a truncated copy?)"
                raise damaged(self.path, f"{relpath} {what}")

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: images}}, from the manifest (no loading)."""
        return {s: dict(c) for s, c in self.manifest["counts"].items()}

    def split(self, name: str) -> PreparedSplit:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        if name not in self._splits:
            self._splits[name] = PreparedSplit(self.path, name, self.image_size,
                                               bool(self.manifest.get("has_annotations")))
        return self._splits[name]

    @property
    def tfds_dir(self) -> Path:
        """The TFDS dataset folder: tfds.builder_from_directory(str(ds.tfds_dir)) opens it without this project."""
        return tfds_dir(self.path)
