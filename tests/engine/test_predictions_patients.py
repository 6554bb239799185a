"""predictions.parquet names each image's patient (the split's group), so the analysis can resample patients."""
import numpy as np

from sweep.engine.evaluate import SplitPredictions
from sweep.engine.predictions import predictions_frame


def _scored(n):
    return SplitPredictions(np.arange(n) % 2, np.tile([[0.8, 0.2]], (n, 1)), 0.1)


def test_patient_id_is_the_splits_group_and_the_image_id_where_there_is_none():
    frame = predictions_frame({"test": _scored(3), "ext:site_b": _scored(2)},
                              {"test": ["a.png", "b.png", "c.png"], "ext:site_b": ["x.png", "y.png"]},
                              ["COVID", "Normal"], {"test": np.array(["p1", "p1", "p2"])})
    test = frame[frame["split"] == "test"]
    assert test["patient_id"].tolist() == ["p1", "p1", "p2"]
    assert frame.loc[frame["split"] == "ext:site_b", "patient_id"].tolist() == ["x.png", "y.png"]
