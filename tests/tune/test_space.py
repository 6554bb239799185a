"""Search-space expansion and validation: bad spaces fail fast, before Ray or JAX start."""
from __future__ import annotations

import dataclasses
import sys

import pytest

from models.spec import SEED_CNN_CUT, SEED_RESNET_CUT
from sweep.configs.presets import PRESETS, get_preset
from sweep.configs.schema import SearchSpace, SweepConfig
from sweep.configs.naming import SEED_FUSION, config_label
from sweep.tune.space import expand, row_count, train_config_for


@pytest.mark.parametrize("preset", ["quick", "cpu-real"])
def test_cpu_presets_have_six_fusions_varying_both_branches_three_seeds_each_and_both_parents(preset):
    trials = expand(get_preset(preset))
    fusions = [t for t in trials if t["model"] == "fusion"]
    assert len(fusions) >= 6 and all(len(t["seeds"]) >= 3 for t in fusions)
    assert {t["model"] for t in trials} == {"fusion", "cnn", "resnet50v2"}
    assert {t["resnet_cut"] for t in fusions} - {None, SEED_RESNET_CUT}, "a ResNet cut besides the seed's"
    assert len({t["cnn_cut"] for t in fusions}) >= 2
    assert (dict(SEED_FUSION, seeds=[0, 1, 2]) in trials) == (preset == "cpu-real")  # quick leaves it out (300 s)
    assert all(len(t["seeds"]) >= 1 for t in trials if t["model"] != "fusion")


def test_costly_configurations_come_first_so_short_trials_fill_the_end():
    trials = expand(get_preset("quick"))
    assert [t["model"] for t in trials[:2]] == ["resnet50v2", "cnn"]
    fusions = [(t["resnet_cut"], t["cnn_cut"]) for t in trials[2:]]
    assert fusions == [("conv2_block1_out", "block3_drop"), ("conv2_block1_out", "block2_drop"),
                       ("conv2_block1_out", "block1_drop"), (None, "block3_drop"), (None, "block2_drop"),
                       (None, "block1_drop")]


def test_one_ray_trial_per_configuration_holds_all_its_seeds_parents_fewer():
    sweep = SweepConfig(space=SearchSpace(cnn_cuts=("block1_drop",), resnet_cuts=(None,), branch_widths=(16,),
                                          head_widths=(32,)), seeds=3, parent_seeds=1)
    trials = expand(sweep)
    assert len(trials) == 4  # 1 grid config + seed fusion + 2 parents
    assert [t["seeds"] for t in trials if t["model"] == "fusion"] == [[0, 1, 2], [0, 1, 2]]
    assert [t["seeds"] for t in trials if t["model"] != "fusion"] == [[0], [0]]
    assert row_count(trials) == 3 + 3 + 1 + 1
    with pytest.raises(ValueError, match="parent_seeds must be between 1 and seeds"):
        expand(sweep.replace(parent_seeds=4))
    with pytest.raises(ValueError, match="seed_mode must be one of auto, vmap, sequential"):
        expand(sweep.replace(seed_mode="parallel"))


def test_random_search_samples_the_grid_and_keeps_the_seed_fusion():
    sweep = get_preset("paper").replace(search="random", num_samples=5, seeds=1)
    trials = expand(sweep)
    assert len([t for t in trials if t["model"] == "fusion"]) in (5, 6)
    assert dict(SEED_FUSION, seeds=[0]) in trials
    assert expand(sweep) == trials  # reproducible


@pytest.mark.parametrize("field, value, words", [
    ("cnn_cuts", ("block9_drop",), "unknown cnn cut 'block9_drop'"),
    ("resnet_cuts", ("conv3_block9_out",), "unknown resnet50v2 cut"),
    ("cnn_cuts", (), "cnn_cuts is empty"),
    ("head_widths", (), "head_widths is empty"),
    ("branch_widths", (3000,), "powers of two"),
])
def test_invalid_space_fails_before_ray_starts(field, value, words):
    sweep = SweepConfig(space=dataclasses.replace(SearchSpace(), **{field: value}))
    before = set(sys.modules)
    with pytest.raises(ValueError, match=words):
        expand(sweep)
    assert "ray" not in set(sys.modules) - before


def test_run_command_rejects_a_bad_space_without_starting_ray(capsys):
    from sweep.cli import main

    assert main(["run", "--cnn-cuts", "block1_drop,nope", "--out", "/nonexistent/never-made"]) == 2
    assert "unknown cnn cut 'nope'" in capsys.readouterr().err
    import ray

    assert not ray.is_initialized()


def test_every_preset_expands():
    for name in PRESETS:
        assert expand(get_preset(name))
    with pytest.raises(ValueError, match="quick, cpu-real, paper"):
        get_preset("huge")


def test_train_config_for_sets_cuts_widths_and_seed():
    base = get_preset("quick").train
    config = train_config_for({"model": "fusion", "cnn_cut": SEED_CNN_CUT, "resnet_cut": SEED_RESNET_CUT,
                               "branch_width": 64, "head_width": 128, "seed": 7}, base)
    assert (config.fusion.cnn_cut, config.fusion.branch_width, config.fusion.head_width, config.seed) == (
        SEED_CNN_CUT, 64, 128, 7)
    assert config_label({"model": "cnn"}) == "cnn"


def test_set_overrides_any_field():
    from sweep.configs.io import set_field

    sweep = set_field(get_preset("quick"), "train.optim.learning_rate", "1e-3")
    assert sweep.train.optim.learning_rate == 1e-3
    assert set_field(sweep, "space.head_widths", "64,128").space.head_widths == (64, 128)
    with pytest.raises(ValueError, match="no field 'nope'"):
        set_field(sweep, "train.nope", "1")
