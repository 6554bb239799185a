"""Per-image predictions of one set of weights: the contract's rows (split, image_id, patient_id, label, pred,
prob_<CLASS>).

A run folder's predictions.parquet holds every named evaluation split its selected weights were scored on
('test', 'ext:<NAME>', 'cf:<NAME>'); a sweep adds trial_id and collects them into RESULTS/predictions.parquet.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from sweep.engine.evaluate import SplitPredictions
from sweep.files import write_bytes_atomic

PREDICTIONS_FILE = "predictions.parquet"
COLUMNS = ("split", "image_id", "patient_id", "label", "pred")


def predictions_frame(scored: Mapping[str, SplitPredictions], image_ids: Mapping[str, Sequence[str]],
                      classes: Sequence[str], patient_ids: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """One row per (split, image): the image's id, its patient (the split's group: patient_ids[split], else the
    image id), its true and predicted class names, a probability per class."""
    frames = []
    for split, predictions in scored.items():
        ids = np.asarray(image_ids[split]).astype(str)
        if len(ids) != len(predictions.labels):
            raise ValueError(f"split {split!r}: {len(ids)} image ids for {len(predictions.labels)} predictions")
        patients = (patient_ids or {}).get(split)
        patients = ids if patients is None or len(patients) != len(ids) else np.asarray(patients).astype(str)
        names = np.asarray(classes, dtype=object)
        frame = pd.DataFrame({"split": split, "image_id": ids, "patient_id": patients,
                              "label": names[predictions.labels.astype(int)],
                              "pred": names[predictions.probs.argmax(1)] if len(ids) else np.array([], object)})
        for k, name in enumerate(classes):
            frame[f"prob_{name}"] = predictions.probs[:, k].astype(np.float32) if len(ids) else np.float32(0)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*COLUMNS, *(f"prob_{c}" for c in classes)])
    return pd.concat(frames, ignore_index=True)


def write_predictions(out_dir: str | Path, frame: pd.DataFrame) -> Path:
    """predictions.parquet into a run folder, atomically."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return write_bytes_atomic(Path(out_dir) / PREDICTIONS_FILE, buffer.getvalue())


def read_predictions(path: str | Path) -> pd.DataFrame:
    return pd.read_parquet(path)
