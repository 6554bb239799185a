"""The on-disk format: a TFDS dataset of array_record files, written one example at a time and read by random access.

Writing goes straight to ArrayRecordWriter (plus TFDS' metadata), so preparing holds one example at a time, never a
split. Reading goes through TFDS' `as_data_source` (random access over the array_record files); records are parsed
for the fields a caller asks for only (training needs image and label, not lesion masks or ids).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

TFDS_NAME = "fusion_sweep_cxr"
TFDS_VERSION = "1.0.0"
SHARD_BYTES = 512 << 20  # array_record files stay below about this size
IMAGE_FIELDS = ("image", "lesion_mask")  # (s, s) arrays stored as raw bytes
INT_FIELDS = ("label", "marker_box")
TEXT_FIELDS = ("id", "group")


class DatasetDamaged(ValueError):
    """A prepared dataset whose files are missing, truncated or unreadable (one line: the path and what to do)."""


def tfds_dir(dataset_path: Path) -> Path:
    return Path(dataset_path) / "tfds" / TFDS_NAME / TFDS_VERSION


def features(image_size: int, annotated: bool):
    """The TFDS feature schema. Images and masks are raw bytes (TFDS' default upcasts every pixel to int64)."""
    import tensorflow_datasets as tfds

    s, raw = image_size, tfds.features.Encoding.BYTES
    spec = {
        "image": tfds.features.Tensor(shape=(s, s), dtype=np.uint8, encoding=raw),
        "label": tfds.features.Tensor(shape=(), dtype=np.int32),
        "id": tfds.features.Text(),
        "group": tfds.features.Text(),
    }
    if annotated:
        spec["lesion_mask"] = tfds.features.Tensor(shape=(s, s), dtype=np.bool_, encoding=raw)
        spec["marker_box"] = tfds.features.Tensor(shape=(4,), dtype=np.int32)
    return tfds.features.FeaturesDict(spec)


class SplitWriter:
    """Appends serialized examples of one split to array_record shards of at most SHARD_BYTES; close() names the
    shards the TFDS way and returns the split's tfds.core.SplitInfo."""

    def __init__(self, data_dir: Path, split: str, schema, example_bytes: int):
        self.data_dir, self.split, self.schema = Path(data_dir), split, schema
        self.per_shard = max(1, SHARD_BYTES // max(example_bytes, 1))
        self.shard_lengths: list[int] = []
        self.num_bytes = 0
        self._writer = None

    def _part(self, k: int) -> Path:
        return self.data_dir / f".{self.split}-part-{k:05d}"

    def write(self, example: dict) -> None:
        from array_record.python.array_record_module import ArrayRecordWriter

        if self._writer is None or self.shard_lengths[-1] >= self.per_shard:
            self._close_shard()
            self._writer = ArrayRecordWriter(str(self._part(len(self.shard_lengths))), "group_size:1")
            self.shard_lengths.append(0)
        record = self.schema.serialize_example(example)
        self._writer.write(record)
        self.shard_lengths[-1] += 1
        self.num_bytes += len(record)

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self):
        import tensorflow_datasets as tfds

        self._close_shard()
        template = tfds.core.ShardedFileTemplate(data_dir=self.data_dir, dataset_name=TFDS_NAME, split=self.split,
                                                 filetype_suffix="array_record")
        for k, final in enumerate(template.sharded_filepaths(len(self.shard_lengths))):
            os.rename(self._part(k), final)
        return tfds.core.SplitInfo(name=self.split, shard_lengths=list(self.shard_lengths), num_bytes=self.num_bytes,
                                   filename_template=template)


def write_metadata(data_dir: Path, schema, split_infos: Sequence) -> None:
    """dataset_info.json and features.json, so tfds.builder_from_directory(data_dir) opens the dataset."""
    import contextlib
    import io

    import tensorflow_datasets as tfds

    with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints banners we do not want mixed into our output
        tfds.folder_dataset.write_metadata(data_dir=str(data_dir), features=schema, split_infos=list(split_infos),
                                           check_data=False, disable_shuffling=True)


class RecordReader:
    """Random access to one split's records. Picklable (the data source is reopened lazily in each process) and
    thread-safe (grain's worker threads share one reader)."""

    def __init__(self, dataset_path: Path, split: str, image_size: int):
        self.dataset_path, self.split, self.image_size = Path(dataset_path), split, image_size
        self._source = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"dataset_path": self.dataset_path, "split": self.split, "image_size": self.image_size}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def _open(self):
        with self._lock:
            if self._source is None:
                import tensorflow_datasets as tfds
                from tensorflow_datasets.core.decode import DeserializeMethod

                try:
                    builder = tfds.builder_from_directory(str(tfds_dir(self.dataset_path)))
                    self._source = builder.as_data_source(split=self.split,
                                                          deserialize_method=DeserializeMethod.RAW_BYTES)
                except Exception as err:  # noqa: BLE001 - any failure here means the folder is not readable
                    raise damaged(self.dataset_path, f"cannot open its {self.split} split ({err})") from None
        return self._source

    def open(self) -> "RecordReader":
        """Open the data source now rather than at the first read (it takes TFDS a moment)."""
        self._open()
        return self

    def __len__(self) -> int:
        return len(self._open())

    def read(self, rows: Sequence[int], fields: Sequence[str]) -> dict[str, np.ndarray]:
        """{field: array with one row per requested row, in the order asked}. Fields: IMAGE_FIELDS, INT_FIELDS,
        TEXT_FIELDS."""
        from tensorflow_datasets.proto import tf_example_pb2

        keys = [int(r) for r in rows]
        try:
            records = self._open().__getitems__(keys) if keys else []
            parsed = [tf_example_pb2.Example.FromString(r).features.feature for r in records]
        except DatasetDamaged:
            raise
        except Exception as err:  # noqa: BLE001 - array_record raises plain RuntimeErrors for corrupt chunks
            raise damaged(self.dataset_path, f"reading {self.split} records failed ({err})") from None
        return {name: self._column(parsed, name) for name in fields}

    def _column(self, parsed: list, name: str) -> np.ndarray:
        s = self.image_size
        if name in IMAGE_FIELDS:
            dtype = np.uint8 if name == "image" else np.bool_
            out = np.empty((len(parsed), s, s), dtype)
            for i, feature in enumerate(parsed):
                out[i] = np.frombuffer(feature[name].bytes_list.value[0], dtype).reshape(s, s)
            return out
        if name == "label":
            return np.array([f["label"].int64_list.value[0] for f in parsed], np.int32).reshape(-1)
        if name == "marker_box":
            return np.array([list(f["marker_box"].int64_list.value) for f in parsed], np.int32).reshape(-1, 4)
        if name in TEXT_FIELDS:
            return np.array([f[name].bytes_list.value[0].decode() for f in parsed], dtype=str)
        raise ValueError(f"unknown record field {name!r}; fields: {IMAGE_FIELDS + INT_FIELDS + TEXT_FIELDS}")


def damaged(path: Path, what: str) -> DatasetDamaged:
    return DatasetDamaged(f"prepared dataset {str(path)!r} is damaged: {what}; delete that folder and run "
                          f"`fusion-sweep data prepare` (or the command you ran) again to rebuild it")
