"""What is known about the explained images besides their pixels: lesion masks and marker boxes (synthetic data),
lung fields (the synthetic generator's, or the Kaggle database's `<class>/masks/` files, resized exactly like the
images), and copies of the marked synthetic images with the marker removed (the marker share's reference)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from data.spec import DataSpec


@dataclasses.dataclass
class Sample:
    """The explained test images (rows of the test split) and their ground truth, row-aligned."""

    images: np.ndarray  # (N,H,W) uint8
    labels: np.ndarray  # (N,) int
    ids: list[str]
    lesions: np.ndarray | None = None  # (N,H,W) bool
    boxes: np.ndarray | None = None  # (N,4) int [y0,x0,y1,x1), -1 without a marker
    lungs: list[np.ndarray | None] | None = None  # per image (H,W) bool, None where unknown
    marker_free: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)  # row -> (H,W) uint8 copy

    def __len__(self) -> int:
        return len(self.labels)


def mask_path(data_dir: str | Path, image_id: str) -> Path:
    """The Kaggle database's lung mask of an image: the same file name under `masks/` beside its `images/`."""
    parts = list(Path(image_id).parts)
    if "images" in parts:
        parts[len(parts) - 1 - parts[::-1].index("images")] = "masks"
    return Path(data_dir).expanduser().joinpath(*parts)


def folder_lung_masks(data_dir: str | Path, ids: list[str], image_size: int) -> list[np.ndarray | None]:
    """Each image's lung mask from the folder (None where the database ships none), resized by the one resize
    every image goes through, then thresholded at half intensity."""
    from data.images import resize_image
    from data.radiography import decode_grey

    out: list[np.ndarray | None] = []
    for image_id in ids:
        path = mask_path(data_dir, image_id)
        if "images" not in Path(image_id).parts or not path.is_file():
            out.append(None)
            continue
        grey = decode_grey(path.read_bytes(), str(path))
        out.append(resize_image(grey, image_size) >= 128)
    return out


def build_sample(spec: DataSpec, test, rows: np.ndarray) -> Sample:
    """The sample of `rows` of the prepared test split with every piece of ground truth the data can give."""
    rows = np.asarray(rows, dtype=int)
    sample = Sample(images=np.asarray(test.images[rows], np.uint8), labels=np.asarray(test.labels)[rows],
                    ids=[str(i) for i in np.asarray(test.ids)[rows]])
    if test.lesion_masks is not None:
        sample.lesions = np.asarray(test.lesion_masks[rows], bool)
    if test.marker_boxes is not None:
        sample.boxes = np.asarray(test.marker_boxes)[rows]
    if spec.source == "radiography" and spec.data_dir:
        lungs = folder_lung_masks(spec.data_dir, sample.ids, spec.image_size)
        sample.lungs = lungs if any(m is not None for m in lungs) else None
    if spec.source == "synthetic":
        _add_synthetic_truth(spec, sample)
    return sample


def _add_synthetic_truth(spec: DataSpec, sample: Sample) -> None:
    """The generator's lung fields of the sampled images, and each marked image drawn again without its marker."""
    from data.synthetic import regenerate

    sample.lungs = list(regenerate(spec, sample.ids)["lung_masks"])
    if sample.boxes is None:
        return
    marked = [k for k, box in enumerate(sample.boxes) if box[0] >= 0]
    if marked:
        copies = regenerate(spec, [sample.ids[k] for k in marked], markers=False)["images"]
        sample.marker_free = {k: copies[j] for j, k in enumerate(marked)}
