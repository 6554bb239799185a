"""Star designs: a label parses back into its configuration, the neighbours step along the right cut lists, and a bad
`--around` stops the run in one line before any work."""
from __future__ import annotations

import argparse

import pytest

from sweep import UsageError
from sweep.cli import main
from sweep.configs.naming import SEED_FUSION, config_label
from sweep.configs.star import QUICK_AROUND, cut_list, parse_label, star


def test_a_label_parses_back_into_the_configuration_it_names():
    for config in (SEED_FUSION, {"model": "fusion", "cnn_cut": "block2_drop", "resnet_cut": None,
                                 "branch_width": 16, "head_width": 256}):
        assert parse_label(config_label(config)) == config


@pytest.mark.parametrize("label, words", [
    ("cnn:block9_drop+rn:conv3_block4_2_relu/b64/h2048", ["block9_drop", "block1_drop", "block5_drop"]),
    ("cnn:block3_drop+rn:conv9_out/b64/h2048", ["conv9_out", "conv2_block1_out", "conv5_block3_out"]),
    ("cnn:block3_drop/b48/h2048", ["48", "power of two"]),
    ("block3_drop/b64", ["CUTS/bWIDTH/hWIDTH"]),
])
def test_a_bad_label_is_one_line_naming_it_and_the_valid_choices(label, words):
    with pytest.raises(UsageError) as err:
        parse_label(label)
    assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), err.value


def test_the_star_around_the_seeds_fusion_steps_along_block_outputs_with_its_own_cut_inserted():
    design = star(dict(SEED_FUSION))
    steps = {(factor, step): config[factor] for config, factor, step in design.neighbours}
    assert steps == {("cnn_cut", -2): "block1_drop", ("cnn_cut", -1): "block2_drop", ("cnn_cut", 1): "block4_drop",
                     ("cnn_cut", 2): "block5_drop", ("resnet_cut", -2): "conv3_block2_out",
                     ("resnet_cut", -1): "conv3_block3_out", ("resnet_cut", 1): "conv3_block4_out",
                     ("resnet_cut", 2): "conv4_block1_out", ("branch_width", -1): 1024}
    assert any("4096" in why for why in design.skipped)  # doubling the widest branch falls off the list: said
    for config, factor, _ in design.neighbours:  # each neighbour differs from the reference in its factor only
        assert [k for k in config if config[k] != SEED_FUSION[k]] == [factor]


def test_a_space_that_declares_three_cuts_is_the_list_and_an_end_skips_its_neighbours():
    assert cut_list("cnn_cut", ("block1_drop", "block3_drop", "block5_drop"), "block3_drop") == \
        ("block1_drop", "block3_drop", "block5_drop")
    assert cut_list("cnn_cut", ("block1_drop", None), "block2_drop")[:3] == ("block1_drop", "block2_drop",
                                                                              "block3_drop")  # canonical
    design = star(parse_label("cnn:block1_drop/b1/h16"), ("block1_drop", "block2_drop", "block3_drop"))
    assert sorted((f, s) for _, f, s in design.neighbours) == [("branch_width", 1), ("cnn_cut", 1), ("cnn_cut", 2)]
    assert len(design.skipped) == 4  # two shallower cuts, no ResNet50V2 branch, a width of 0.5


def _sweep(*argv):
    from sweep.commands.run import add_arguments, build_sweep

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return build_sweep(parser.parse_args(list(argv)))


def test_around_replaces_the_grid_by_the_star_with_at_least_three_seeds_and_no_parents():
    from sweep.tune.space import expand

    sweep = _sweep("--around")
    trials = expand(sweep)
    assert sweep.around == QUICK_AROUND and sweep.space.include_parents is False
    assert len(trials) == 1 + len(star(parse_label(QUICK_AROUND)).neighbours) == 8
    assert all(t["model"] == "fusion" and len(t["seeds"]) >= 3 for t in trials)
    assert QUICK_AROUND in {config_label(t) for t in trials}
    assert _sweep("--preset", "paper", "--around").around == config_label(SEED_FUSION)


@pytest.mark.parametrize("argv, words", [
    (["--around", "cnn:blockX_drop/b16/h2048"], ["blockX_drop", "block1_drop"]),
    (["--around", "--seeds", "2"], ["at least 3 seeds"]),
    (["--around", "resnet50v2"], ["CUTS/bWIDTH/hWIDTH"]),
])
def test_a_bad_around_run_exits_2_in_one_line_before_any_work(tmp_path, capsys, argv, words):
    out = tmp_path / "never-made"
    assert main(["run", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert not out.exists()
