"""--score-stopped without Ray (sweep.tune.score): a seed stopped after a checkpointed epoch is scored on the test split
with the weights its row reports, even when those are an earlier epoch's carried inside its one checkpoint."""
from __future__ import annotations

import pandas as pd
import pytest

from data.spec import DataSpec, PipelineSpec
from models.spec import FusionSpec
from sweep.configs.schema import EarlyStopping, TrainConfig

# the train loss of epoch 1 is the run's highest, so "best by max loss" selects epoch 1: weights older than the
# checkpoint's own epoch, without depending on validation noise
EARLIEST_IS_BEST = EarlyStopping(metric="loss", mode="max", patience=10)
CONFIG = TrainConfig(model="fusion", fusion=FusionSpec(cnn_cut="block1_drop", resnet_cut=None, branch_width=8,
                                                       head_width=8),
                     data=DataSpec(image_size=16, num_images=90), pipeline=PipelineSpec(channels=1), batch_size=8,
                     eval_batch_size=32, epochs=4, early_stopping=EARLIEST_IS_BEST)


class Stopped(Exception):
    pass


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A seed 'stopped by the scheduler' right after its epoch-2 report (a rung: a checkpoint was written)."""
    from data.builder import prepare
    from sweep.engine.train import train_and_evaluate

    out = tmp_path_factory.mktemp("results")
    seen = {}

    def stop_after_epoch_2(epoch, summary):
        seen.update(summary)
        if epoch == 2:
            raise Stopped

    with pytest.raises(Stopped):
        train_and_evaluate(CONFIG, out_dir=out / "trials" / "abc12_00001-s0", prepared=prepare(CONFIG.data),
                           on_epoch=stop_after_epoch_2, checkpoint_at=lambda epoch: epoch == 2)
    return out, seen


def test_a_stopped_row_is_scored_with_the_weights_its_validation_came_from(stopped_run):
    from sweep.tune.score import score_stopped_rows

    out, summary = stopped_run
    assert summary["checkpointed"] and summary["selected_epoch"] == 1 and summary["epoch"] == 2
    row = {"trial_id": "abc12_00001-s0", "status": "TERMINATED", "train_status": "stopped_by_scheduler",
           "weights_epoch": summary["selected_epoch"], "val_accuracy": summary["selected_val_accuracy"]}
    assert score_stopped_rows([], [row], out, say=print) == 1
    assert row["scored_stopped"] is True and row["train_status"] == "stopped_by_scheduler"
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert set(predictions["trial_id"]) == {row["trial_id"]} and len(predictions) == row["test_n"] > 0
    assert (predictions["label"] == predictions["pred"]).mean() == pytest.approx(row["test_accuracy"])
    assert {"test_balanced_accuracy", "test_auc", "collapsed"} <= set(row)


def test_a_stopped_row_whose_checkpoint_is_older_than_its_weights_stays_unscored(stopped_run):
    from sweep.tune.score import score_stopped_rows

    out, _ = stopped_run
    row = {"trial_id": "abc12_00001-s0", "status": "TERMINATED", "train_status": "stopped_by_scheduler",
           "weights_epoch": 3}  # as if stopped at epoch 3, between checkpoints
    assert score_stopped_rows([], [row], out, say=print) == 0
    assert "test_accuracy" not in row and "holds epoch 2, not the weights of epoch 3" in row["message"]
