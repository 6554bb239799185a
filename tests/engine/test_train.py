"""sweep.engine.train / sweep.engine.steps on tiny synthetic data: outputs, resume, refusal, divergence, one compilation."""
from __future__ import annotations

import json

import numpy as np
import pytest

from data.spec import DataSpec, PipelineSpec
from models.spec import FusionSpec
from sweep.configs.schema import EarlyStopping, OptimConfig, TrainConfig

TINY_FUSION = FusionSpec(cnn_cut="block2_drop", resnet_cut="conv2_block1_out", branch_width=16, head_width=16)
TIMING_KEYS = {"train_seconds", "seconds_per_epoch", "images_per_second", "compile_seconds", "latency_ms"}


def tiny_config(**changes) -> TrainConfig:
    config = TrainConfig(model="fusion", fusion=TINY_FUSION, data=DataSpec(image_size=32, num_images=120),
                         pipeline=PipelineSpec(channels=1), batch_size=16, eval_batch_size=32, epochs=3,
                         early_stopping=EarlyStopping(patience=5))
    return config.replace(**changes)


@pytest.fixture(scope="module")
def prepared():
    from data.builder import prepare
    from sweep.runtime import enable_compilation_cache

    enable_compilation_cache()  # under the test run's temporary cache: repeated programs compile once
    return prepare(tiny_config().data)


def stable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}


def test_run_writes_outputs_and_resumes_to_identical_metrics(tmp_path, prepared):
    from sweep.engine.train import train_and_evaluate

    config = tiny_config(epochs=2)
    whole = train_and_evaluate(config, out_dir=tmp_path / "whole", prepared=prepared)
    assert whole.status == "completed" and len(whole.history) == 2
    for name in ("metrics.json", "classification_report.txt", "history.csv", "confusion_matrix.png", "config.json"):
        assert (tmp_path / "whole" / name).is_file(), name
    on_disk = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert on_disk["test_accuracy"] == whole.metrics["test_accuracy"] and on_disk["epochs_run"] == 2
    assert (tmp_path / "whole" / "history.csv").read_text().splitlines()[0] == \
        "epoch,loss,accuracy,val_loss,val_accuracy,seconds"

    class Killed(Exception):
        pass

    def die_after_first_epoch(epoch, metrics):
        assert set(metrics) >= {"loss", "accuracy", "val_loss", "val_accuracy", "seconds", "epoch"}
        raise Killed

    with pytest.raises(Killed):
        train_and_evaluate(config, out_dir=tmp_path / "split", prepared=prepared, on_epoch=die_after_first_epoch)
    assert not (tmp_path / "split" / "metrics.json").exists()
    resumed = train_and_evaluate(config, out_dir=tmp_path / "split", prepared=prepared)
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert stable(resumed.metrics) == stable(whole.metrics)


def test_out_dir_with_another_config_is_refused_until_overwrite(tmp_path, prepared):
    from sweep.engine.run_folder import ConfigMismatch
    from sweep.engine.train import train_and_evaluate

    train_and_evaluate(tiny_config(epochs=1), out_dir=tmp_path, prepared=prepared)
    with pytest.raises(ConfigMismatch, match=r"optim.learning_rate: 0.0001 -> 0.001"):
        train_and_evaluate(tiny_config(epochs=1, optim=OptimConfig(learning_rate=1e-3)), out_dir=tmp_path,
                           prepared=prepared)
    again = train_and_evaluate(tiny_config(epochs=1, optim=OptimConfig(learning_rate=1e-3)), out_dir=tmp_path,
                               prepared=prepared, overwrite=True)
    assert again.status == "completed"


def test_nan_loss_stops_the_run_as_diverged(tmp_path, prepared):
    from sweep.engine.train import train_and_evaluate

    config = tiny_config(epochs=2, optim=OptimConfig(name="sgd", learning_rate=1e30, momentum=0.0))
    result = train_and_evaluate(config, out_dir=tmp_path, prepared=prepared)
    assert result.status == "diverged"
    assert result.metrics["diverged_epoch"] == 1 and result.metrics["diverged_step"] >= 1
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "diverged"


def test_impossible_configs_fail_before_training(prepared):
    from sweep.engine.train import train_and_evaluate

    with pytest.raises(ValueError, match="unknown optimiser 'lamb'; choose one of: rmsprop, adam, adamw, sgd"):
        train_and_evaluate(tiny_config(optim=OptimConfig(name="lamb")), prepared=prepared)
    with pytest.raises(ValueError, match=r"batch_size 4096 is larger than the train split \(\d+ images\)"):
        train_and_evaluate(tiny_config(batch_size=4096), prepared=prepared)


def test_train_step_compiles_once_across_an_epoch_with_a_ragged_last_batch(prepared):
    import flax.nnx as nnx

    from data.pipeline import train_batches
    from models.registry import build_model
    from sweep.engine.steps import init_state, make_optimizer, make_train_step, split_model

    split = prepared.split("train")
    batch_size = 13
    assert len(split) % batch_size != 0
    model = build_model(TINY_FUSION.replace(image_size=32, channels=1), rngs=nnx.Rngs(params=0, dropout=1))
    graphdef, params, rest = split_model(model, train=True)
    # SGD: its update is linear in the gradient. RMSprop's first step divides each gradient by its own magnitude,
    # so a near-zero gradient whose last bits depend on the vmapped program's summation order moves its weight by
    # anything from -lr*3.2 to +lr*3.2: no tolerance tells that apart from a real difference between the programs.
    tx = make_optimizer(OptimConfig(name="sgd", learning_rate=0.1, momentum=0.0), steps_per_epoch=10, epochs=1)
    step = make_train_step(graphdef, tx, PipelineSpec(channels=1))
    state = init_state(params, rest, tx)
    valid_rows = []
    for batch in train_batches(split, PipelineSpec(channels=1), batch_size=batch_size, seed=0, epoch=1, num_classes=2):
        valid_rows.append(int(batch["valid"].sum()))
        state, metrics = step(state, {k: batch[k] for k in ("image", "label", "valid")})
        assert set(metrics) == {"loss", "accuracy"}
    assert valid_rows[-1] < batch_size  # the last batch was padded
    assert int(state.totals["count"]) == sum(valid_rows)
    assert step._cache_size() == 1


def test_train_state_stacks_along_a_seed_axis_and_vmaps(prepared):
    """One TrainState per seed, stacked on a leading axis: a vmapped step equals each seed's own step."""
    import flax.nnx as nnx
    import jax
    import jax.numpy as jnp

    from data.pipeline import train_batches
    from models.registry import build_model
    from sweep.engine.steps import init_state, make_optimizer, make_train_step, split_model

    # SGD: its update is linear in the gradient. RMSprop's first step divides each gradient by its own magnitude,
    # so a near-zero gradient whose last bits depend on the vmapped program's summation order moves its weight by
    # anything from -lr*3.2 to +lr*3.2: no tolerance tells that apart from a real difference between the programs.
    tx = make_optimizer(OptimConfig(name="sgd", learning_rate=0.1, momentum=0.0), steps_per_epoch=10, epochs=1)
    states, graphdef = [], None
    for seed in (0, 1):
        model = build_model(TINY_FUSION.replace(image_size=32, channels=1), rngs=nnx.Rngs(params=seed, dropout=seed + 1))
        graphdef, params, rest = split_model(model, train=True)
        states.append(init_state(params, rest, tx))
    batch = next(iter(train_batches(prepared.split("train"), PipelineSpec(channels=1), batch_size=16, seed=0,
                                    epoch=1, num_classes=2)))
    batch = {k: jnp.asarray(batch[k]) for k in ("image", "label", "valid")}
    step = make_train_step(graphdef, tx, PipelineSpec(channels=1))
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    together, _ = jax.jit(jax.vmap(step, in_axes=(0, None)))(stacked, batch)
    for seed, state in enumerate(states):
        alone, _ = step(state, batch)
        for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(together.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[seed]), rtol=1e-5, atol=1e-6)


def test_eval_predictions_are_identical_at_batch_1_and_64(prepared):
    import flax.nnx as nnx

    from models.registry import build_model
    from sweep.engine.steps import make_predict_fn

    model = build_model(TINY_FUSION.replace(image_size=32, channels=1), rngs=nnx.Rngs(params=0, dropout=1))
    images = prepared.split("train").images[:70, :, :, None].astype(np.float32) / 255.0
    one, many = make_predict_fn(model, PipelineSpec(channels=1), 1), make_predict_fn(model, PipelineSpec(channels=1), 64)
    p1, p64 = one(images), many(images)
    assert p1.shape == (70, 2)
    np.testing.assert_array_equal(p1.argmax(1), p64.argmax(1))
    np.testing.assert_allclose(p1, p64, rtol=0, atol=1e-5)
    for n in (1, 7, 50):
        np.testing.assert_allclose(many(images[:n]), p64[:n], atol=1e-6)
    assert many.jitted._cache_size() == 1


def test_load_run_predicts_the_test_metrics(tmp_path, prepared):
    from sweep.engine.metrics import classification_metrics
    from sweep.engine.load import load_run
    from sweep.engine.train import train_and_evaluate

    result = train_and_evaluate(tiny_config(epochs=2), out_dir=tmp_path, prepared=prepared)
    loaded = load_run(tmp_path)
    assert loaded.classes == ("COVID", "Normal") and loaded.weights_epoch == result.metrics["weights_epoch"]
    test = prepared.split("test")
    probs = loaded.predict_fn(16)(test.images[..., None].astype(np.float32) / 255.0)
    again = classification_metrics(test.labels, probs, loaded.classes)
    assert again["test_accuracy"] == result.metrics["test_accuracy"]
    assert again["test_auc"] == pytest.approx(result.metrics["test_auc"], abs=1e-6)
    from sweep.commands.evaluate import evaluate_run

    streamed, _ = evaluate_run(loaded, prepared, "test", batch_size=7)  # batch by batch from disk
    assert streamed["test_accuracy"] == result.metrics["test_accuracy"] and streamed["images"] == len(test)


def test_cli_reports_divergence_with_exit_code_and_no_traceback(tmp_path, prepared, capsys):
    from sweep.cli import main

    code = main(["train", "--model", "fusion", "--cnn-cut", "block2_drop", "--resnet-cut", "conv2_block1_out",
                 "--branch-width", "16", "--head-width", "16", "--image-size", "32", "--num-images", "120",
                 "--channels", "1", "--epochs", "1", "--optimizer", "sgd", "--lr", "1e30", "--no-progress",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 3
    assert "diverged: loss became NaN or inf at epoch 1, step" in err and "Traceback" not in err


def test_evaluate_refuses_classes_the_model_does_not_know():
    from sweep.commands.evaluate import check_classes

    assert check_classes(("Normal", "COVID"), ("COVID", "Normal")) == [1, 0]
    with pytest.raises(ValueError, match="'Lung_Opacity' unknown to the model; the model knows COVID, Normal; "
                                         "the data has COVID, Lung_Opacity"):
        check_classes(("COVID", "Lung_Opacity"), ("COVID", "Normal"))


def test_checkpoints_name_arrays_by_their_place_and_old_run_folders_are_refused(tmp_path, prepared):
    import orbax.checkpoint as ocp

    from sweep import UsageError
    from sweep.engine.checkpoint import RunCheckpoints
    from sweep.engine.train import train_and_evaluate

    train_and_evaluate(tiny_config(epochs=1), out_dir=tmp_path, prepared=prepared)
    checkpoints = RunCheckpoints(tmp_path / "checkpoints")
    saved = checkpoints.manager.restore(1, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    assert "cnn.block1_conv.kernel" in saved["params"] and "cnn.block1_bn.mean" in saved["rest"]
    assert any(name.startswith("0.nu.cnn.block1_conv") for name in saved["opt"])  # RMSprop's second moment
    meta = checkpoints.meta(1)
    del meta["checkpoint_format"]  # what a run of an older fusion-sweep left behind
    checkpoints.manager.delete(1)
    checkpoints.manager.save(1, args=ocp.args.Composite(state=ocp.args.StandardSave(dict(saved)),
                                                        meta=ocp.args.JsonSave(meta)), force=True)
    checkpoints.close()
    (tmp_path / "metrics.json").unlink()
    with pytest.raises(UsageError, match="older fusion-sweep .* rerun with --overwrite"):
        train_and_evaluate(tiny_config(epochs=1), out_dir=tmp_path, prepared=prepared)


# The train loss of epoch 1 (from fresh weights) is the highest of a run, so "best by max loss" is epoch 1: a run
# whose selected weights are those of an earlier epoch than the last, without depending on validation noise.
EARLIEST_IS_BEST = EarlyStopping(metric="loss", mode="max", patience=10)


def test_every_metric_of_a_run_comes_from_the_selected_epochs_weights(tmp_path, prepared):
    from sweep.engine.load import load_run
    from sweep.engine.train import train_and_evaluate

    best = train_and_evaluate(tiny_config(epochs=3, early_stopping=EARLIEST_IS_BEST), out_dir=tmp_path / "best",
                              prepared=prepared)
    last = train_and_evaluate(tiny_config(epochs=3, early_stopping=EARLIEST_IS_BEST, weights="last"),
                              out_dir=tmp_path / "last", prepared=prepared)
    assert best.metrics["best_epoch"] == best.metrics["weights_epoch"] == 1
    assert last.metrics["best_epoch"] == 1 and last.metrics["weights_epoch"] == 3
    for result in (best, last):
        row = result.history[result.metrics["weights_epoch"] - 1]
        assert result.metrics["val_accuracy"] == row["val_accuracy"]
        assert result.metrics["val_loss"] == row["val_loss"]
    # the best epoch's weights travel inside the one checkpoint on disk, and load_run finds them there
    assert load_run(tmp_path / "best").weights_epoch == 1 and load_run(tmp_path / "last").weights_epoch == 3
    assert [p.name for p in (tmp_path / "best" / "checkpoints").iterdir() if p.name.isdigit()] == ["3"]


def test_checkpoints_when_due_and_after_the_last_epoch_and_resumes_from_the_one_on_disk(tmp_path, prepared):
    from sweep.engine.checkpoint import RunCheckpoints
    from sweep.engine.train import train_and_evaluate

    config = tiny_config(epochs=3, early_stopping=EARLIEST_IS_BEST)
    seen = []

    class Killed(Exception):
        pass

    def die_after_epoch_2(epoch, metrics):
        seen.append((epoch, metrics["checkpointed"], metrics["train_status"] != "training"))
        if epoch == 2:
            raise Killed

    every_other = lambda epoch: epoch % 2 == 0  # noqa: E731
    with pytest.raises(Killed):
        train_and_evaluate(config, out_dir=tmp_path, prepared=prepared, on_epoch=die_after_epoch_2,
                           checkpoint_at=every_other)
    assert seen == [(1, False, False), (2, True, False)]
    checkpoints = RunCheckpoints(tmp_path / "checkpoints")
    assert checkpoints.epochs() == [2] and checkpoints.meta(2)["best_epoch"] == 1
    checkpoints.close()
    resumed = train_and_evaluate(config, out_dir=tmp_path, prepared=prepared, on_epoch=die_after_epoch_2,
                                 checkpoint_at=every_other)
    assert seen[2:] == [(3, True, True)]  # the last epoch checkpoints whatever checkpoint_at says
    whole = train_and_evaluate(config, out_dir=tmp_path / "whole", prepared=prepared)
    assert resumed.metrics["weights_epoch"] == 1 and stable(resumed.metrics) == stable(whole.metrics)
