"""A prepared dataset on disk (TFDS array_record, read through as_data_source) and its splits as in-memory arrays."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from data.splits import SPLITS

MANIFEST = "prepared.json"
TFDS_NAME = "fusion_sweep_cxr"


@dataclasses.dataclass
class SplitArrays:
    """One split, fully in memory. Row i of every array is the same example."""

    images: np.ndarray  # (N,H,W) uint8 grey
    labels: np.ndarray  # (N,) int32
    ids: np.ndarray  # (N,) str: stable image ids (relative file path, or 'synthetic-000123')
    groups: np.ndarray  # (N,) str: patient / group id (never shared between splits)
    lesion_masks: np.ndarray | None = None  # (N,H,W) bool, synthetic only
    marker_boxes: np.ndarray | None = None  # (N,4) int32 [y0,x0,y1,x1), -1 when no marker; synthetic only

    def __len__(self) -> int:
        return len(self.labels)


class PreparedDataset:
    """What prepare() returns: metadata from the manifest, splits loaded lazily (once) from the TFDS files."""

    def __init__(self, path: Path):
        self.path = Path(path)
        manifest = json.loads((self.path / MANIFEST).read_text())
        self.manifest = manifest
        self.classes: tuple[str, ...] = tuple(manifest["classes"])
        self.image_size: int = int(manifest["image_size"])
        self.fingerprint: str = manifest["fingerprint"]
        self.source: str = manifest["source"]
        self._splits: dict[str, SplitArrays] = {}

    def __repr__(self) -> str:
        return f"PreparedDataset({self.source}, classes={self.classes}, size={self.image_size}, path={str(self.path)!r})"

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: images}}, from the manifest (no loading)."""
        return {s: dict(c) for s, c in self.manifest["counts"].items()}

    def split(self, name: str) -> SplitArrays:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        if name not in self._splits:
            self._splits[name] = self._load(name)
        return self._splits[name]

    def _load(self, name: str) -> SplitArrays:
        import tensorflow_datasets as tfds

        builder = tfds.builder_from_directory(str(self.path / "tfds" / TFDS_NAME / "1.0.0"))
        source = builder.as_data_source(split=name)
        n = len(source)
        records = source.__getitems__(list(range(n))) if n else []
        s = self.image_size

        def stack(key, dtype, shape):
            if not records:
                return np.zeros((0,) + shape, dtype)
            return np.stack([np.asarray(r[key]) for r in records]).astype(dtype, copy=False)

        def text(key):
            return np.array([r[key].decode() if isinstance(r[key], bytes) else str(r[key]) for r in records], dtype=str)

        order = stack("order", np.int64, ())
        arrays = SplitArrays(
            images=stack("image", np.uint8, (s, s)),
            labels=stack("label", np.int32, ()),
            ids=text("id"),
            groups=text("group"),
        )
        if self.manifest.get("has_annotations"):
            arrays.lesion_masks = stack("lesion_mask", bool, (s, s))
            arrays.marker_boxes = stack("marker_box", np.int32, (4,))
        if np.any(order != np.arange(n)):  # keep the written order whatever the reader does
            perm = np.argsort(order)
            arrays = SplitArrays(**{f.name: (None if getattr(arrays, f.name) is None else getattr(arrays, f.name)[perm])
                                    for f in dataclasses.fields(SplitArrays)})
        return arrays
