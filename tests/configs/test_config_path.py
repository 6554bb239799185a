"""One config path: presets, `--set FIELD=VALUE` read by each field's type, shorthand flags, reproduce's recipe,
and `run --from-manifest` rebuilding the sweep a manifest records."""
from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from data.spec import DataSpec, PipelineSpec
from sweep import UsageError
from sweep.configs.io import apply_settings, config_to_dict, from_dict
from sweep.configs.paper import seed_model_config
from sweep.configs.presets import PRESETS, get_preset
from sweep.configs.schema import EarlyStopping, OptimConfig, SweepConfig, TrainConfig


def test_every_preset_is_a_module_with_get_config_named_as_listed():
    for name, get_config in PRESETS.items():
        sweep = get_config()
        assert isinstance(sweep, SweepConfig) and get_preset(name) == sweep
    with pytest.raises(UsageError, match="unknown preset 'huge'; choose from quick, cpu-real, paper"):
        get_preset("huge")


def test_set_reads_text_by_the_fields_type():
    sweep = apply_settings(get_preset("quick"), [
        "train.optim.learning_rate=1e-3", "space.cnn_cuts=block1_drop,none", "space.include_parents=no",
        "train.pipeline.oversample=3,1", "train.bn_momentum=none", "max_concurrent=2", "train.early_stopping=none"])
    assert sweep.train.optim.learning_rate == 1e-3
    assert sweep.space.cnn_cuts == ("block1_drop", None) and sweep.space.include_parents is False
    assert sweep.train.pipeline.oversample == (3.0, 1.0) and sweep.train.bn_momentum is None
    assert sweep.max_concurrent == 2 and sweep.train.early_stopping is None
    # a nested config that is None gets its defaults before the field is set
    assert apply_settings(sweep, ["train.early_stopping.patience=2"]).train.early_stopping == EarlyStopping(patience=2)


@pytest.mark.parametrize("setting, words", [
    ("train.pipeline.augment=heavy", "expected one of none, mild, seed"),
    ("train.epochs=many", "expected an integer, got 'many'"),
    ("space.include_parents=maybe", "expected true or false"),
    ("train.nope=1", "TrainConfig has no field 'nope'"),
    ("train.epochs.x=1", "epochs is a value, not a nested config"),
    ("train.optim=adam", "a nested config: set one of its fields"),
    ("epochs", "--set expects FIELD=VALUE"),
])
def test_bad_settings_say_what_was_wrong(setting, words):
    with pytest.raises(UsageError, match=words):
        apply_settings(get_preset("quick"), [setting])


def _args(command: str, *argv: str) -> argparse.Namespace:
    from sweep.cli import build_parser

    return build_parser().parse_args([command, *argv])


def test_train_shorthands_are_the_same_as_set():
    from sweep.commands.train import config_from_args

    short = config_from_args(_args("train", "--lr", "1e-3", "--bn-momentum", "0.9", "--cnn-cut", "none",
                                   "--resnet-cut", "conv2_block1_out", "--classes", "COVID,Normal,Viral",
                                   "--augment-cnn-only", "--patience", "0"))
    long = config_from_args(_args("train", "--set", "optim.learning_rate=1e-3", "--set", "bn_momentum=0.9",
                                  "--set", "fusion.cnn_cut=none", "--set", "train.fusion.resnet_cut=conv2_block1_out",
                                  "--set", "data.classes=COVID,Normal,Viral", "--set", "augment_cnn_only=true",
                                  "--set", "early_stopping=none"))
    assert short == long
    assert short.fusion.cnn_cut is None and short.early_stopping is None and short.data.classes[-1] == "Viral"
    assert config_from_args(_args("train")) == TrainConfig()  # no flags: the defaults train has always had
    # --set has the last word over a shorthand; --data-dir alone means radiography
    assert config_from_args(_args("train", "--epochs", "3", "--set", "epochs=4")).epochs == 4
    assert config_from_args(_args("train", "--data-dir", "/data")).data.source == "radiography"
    assert config_from_args(_args("train", "--preset", "quick")).data.image_size == 32


def test_reproduce_is_the_paper_presets_recipe_for_the_three_seed_models():
    from sweep.commands.reproduce import seed_configs

    configs = seed_configs(_args("reproduce", "--data-dir", "/data", "--epochs", "3", "--image-size", "64",
                                 "--bn-momentum", "0.9", "--init", "resnet50v2=scratch"))
    assert list(configs) == ["cnn", "resnet50v2", "fusion"]
    # the seed's recipe, field by field, as `reproduce` has always trained it
    for model, config in configs.items():
        augmented = model != "resnet50v2"
        assert config == TrainConfig(
            model=model, data=DataSpec(source="radiography", data_dir="/data", image_size=64),
            pipeline=PipelineSpec(balance="oversample", oversample=(3.0, 1.0), augment="seed" if augmented else "none"),
            optim=OptimConfig(name="rmsprop", learning_rate=1e-4), batch_size=16, epochs=3,
            early_stopping=EarlyStopping(metric="val_accuracy", mode="max", patience=5),
            augment_cnn_only=model == "fusion", bn_momentum=0.9, init={"resnet50v2": "scratch"})
    assert get_preset("paper").train.init == {"resnet50v2": "imagenet"}  # the seed fine-tuned ImageNet ResNet50V2
    assert seed_model_config(get_preset("paper").train, "cnn").augment_cnn_only is False
    with pytest.raises(UsageError, match="needs --data-dir"):
        seed_configs(_args("reproduce"))


def test_run_from_manifest_rebuilds_the_recorded_sweep(tmp_path):
    from sweep.commands.run import build_sweep
    from sweep.tune.results import manifest
    from sweep.tune.space import expand

    original = apply_settings(get_preset("paper"), ["train.data.data_dir=/data", "seeds=2", "num_samples=5",
                                                    "train.data.cache_dir=/elsewhere/cache"])
    (tmp_path / "manifest.json").write_text(json.dumps(manifest(original, data_fingerprint="abc")))
    rebuilt = build_sweep(_args("run", "--from-manifest", str(tmp_path)))
    assert rebuilt == dataclasses.replace(original, train=original.train.replace(
        data=original.train.data.replace(cache_dir=None)))  # the other machine's cache folder is not reused
    assert expand(rebuilt) == expand(original)  # the very same trials, random search included
    assert build_sweep(_args("run", "--from-manifest", str(tmp_path / "manifest.json"), "--seeds", "1")).seeds == 1
    with pytest.raises(UsageError, match="not a fusion-sweep manifest.json"):
        build_sweep(_args("run", "--from-manifest", str(tmp_path / "missing.json")))


def test_config_dicts_round_trip():
    sweep = get_preset("cpu-real")
    assert from_dict(SweepConfig, config_to_dict(sweep)) == sweep
    with pytest.raises(UsageError, match=r"OptimConfig has no field\(s\) \['beta'\]"):
        from_dict(TrainConfig, {"optim": {"beta": 1}})
