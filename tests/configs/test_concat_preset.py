"""The concat-xception-resnet preset (Rahimzadeh & Attar 2020): its trials, its model, one epoch of training."""
from __future__ import annotations

import flax.nnx as nnx
import pytest

from models.fusion import FusionNet
from models.param_count import param_count
from models.profile import count_params, output_shape
from sweep import UsageError
from sweep.configs.naming import config_label
from sweep.configs.presets import get_preset
from sweep.tune.space import expand, train_config_for

CONCAT = "xception:block14_sepconv2_act+resnet50v2:post_relu/concat/h1024"


def test_the_preset_concatenates_whole_xception_and_resnet50v2_at_300px():
    sweep = get_preset("concat-xception-resnet")
    trials = expand(sweep)
    assert sorted(config_label(t) for t in trials) == sorted([CONCAT, "xception", "resnet50v2"])
    assert sweep.train.data.image_size == 300
    assert sweep.train.init == {"xception": "imagenet", "resnet50v2": "imagenet"}
    concat = next(t for t in trials if t["model"] == "fusion")
    spec = train_config_for(concat, sweep.train).fusion
    assert (spec.merge, spec.dropout, spec.head_width) == ("concat", 0.5, 1024)
    spec = spec.replace(image_size=300)
    model = nnx.eval_shape(lambda: FusionNet(spec, rngs=nnx.Rngs(0)))
    # both maps are 10x10x2048: concatenated channel-wise, 1x1 conv of 1024, Flatten, Dropout, Dense(2)
    assert model.same_maps and model.a.output_shape == model.b.output_shape == (10, 10, 2048)
    assert model.fusion_predictions.kernel.shape == (10 * 10 * 1024, 2)
    assert tuple(count_params(model))[::2] == param_count(spec)
    # at 100 px the maps differ (Xception 3x3, ResNet50V2 4x4): each is averaged over space, then concatenated
    small = nnx.eval_shape(lambda: FusionNet(spec.replace(image_size=100), rngs=nnx.Rngs(0)))
    assert not small.same_maps and small.fusion_predictions.kernel.shape == (4096, 2)
    assert output_shape(small, (2, 100, 100, 3)) == (2, 2)


def test_around_is_refused_for_a_concat_sweep():
    sweep = get_preset("concat-xception-resnet").replace(around=CONCAT, seeds=3)
    with pytest.raises(UsageError, match="--around steps the seed's branch fusions"):
        expand(sweep)


@pytest.mark.slow  # both backbones whole compile and train on CPU (a minute or more)
def test_the_concat_model_trains_one_epoch_on_tiny_synthetic_images(tmp_path):
    from data.spec import DataSpec
    from sweep.engine.train import train_and_evaluate

    sweep = get_preset("concat-xception-resnet")
    concat = next(t for t in expand(sweep) if t["model"] == "fusion")
    config = train_config_for(concat, sweep.train).replace(
        data=DataSpec(source="synthetic", image_size=72, num_images=40), batch_size=8, eval_batch_size=16,
        epochs=1, early_stopping=None, init={})  # from scratch: no ImageNet files here
    result = train_and_evaluate(config, out_dir=tmp_path / "concat")
    assert result.status == "completed" and len(result.history) == 1
    assert result.metrics["test_n"] > 0 and 0.0 <= result.metrics["test_accuracy"] <= 1.0
