"""The train command's backbone flags: --backbones A,B, --cut-a/--cut-b, --model with any backbone."""
from __future__ import annotations

import pytest

from sweep import cli
from sweep.commands import train as train_command


def train_config(argv):
    return train_command.config_from_args(cli.build_parser().parse_args(["train", *argv]))


def test_backbones_picks_the_pair_with_linear_branches_and_middle_default_cuts():
    fusion = train_config(["--backbones", "xception,mobilenetv2", "--cut-b", "block_2_add"]).fusion
    assert (fusion.backbone_a, fusion.backbone_b, fusion.cut_a, fusion.cut_b) == (
        "xception", "mobilenetv2", "add_6", "block_2_add")
    assert (fusion.cnn_branch_activation, fusion.resnet_branch_activation) == ("linear", "linear")
    assert fusion.label == "xception:add_6+mobilenetv2:block_2_add/b2048/h2048"


def test_the_seed_pairs_flags_still_name_its_cuts():
    fusion = train_config(["--cnn-cut", "block2_drop", "--cut-b", "conv4_block6_out"]).fusion
    assert fusion.label == "cnn:block2_drop+rn:conv4_block6_out/b2048/h2048"
    assert fusion.resnet_branch_activation == "softmax"
    assert train_config(["--model", "efficientnetb0"]).model == "efficientnetb0"


@pytest.mark.parametrize("argv,words", [
    (["--backbones", "xception,resnet"], "--backbones takes two of cnn, resnet50v2, xception"),
    (["--backbones", "xception,mobilenetv2", "--cut-a", "block2_sepconv9"], "unknown xception cut 'block2_sepconv9'"),
])
def test_bad_backbone_flags_are_one_line_usage_errors(argv, words, capsys):
    assert cli.main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and err.count("\n") == 1


def test_run_backbones_sweeps_the_pairs_default_cuts_with_both_parents_and_pair_columns():
    from sweep.commands import run as run_command
    from sweep.tune.results import trial_row
    from sweep.tune.space import configurations, train_config_for

    sweep = run_command.build_sweep(cli.build_parser().parse_args(
        ["run", "--backbones", "xception,mobilenetv2", "--cuts-b", "block_5_add", "--branch-widths", "8",
         "--head-widths", "16"]))
    assert sweep.space.backbones == ("xception", "mobilenetv2")
    configs = configurations(sweep)
    assert [c["model"] for c in configs[:2]] == ["xception", "mobilenetv2"]
    fusions = configs[2:]
    assert sorted(c["cut_a"] for c in fusions) == ["add_10", "add_2", "add_6"]
    assert {c["cut_b"] for c in fusions} == {"block_5_add"} and {c["backbone_a"] for c in fusions} == {"xception"}
    train = train_config_for(dict(fusions[0], seed=0), sweep.train)
    assert (train.fusion.backbone_a, train.fusion.resnet_branch_activation) == ("xception", "linear")
    assert train.fusion.label == f"xception:{fusions[0]['cut_a']}+mobilenetv2:block_5_add/b8/h16"
    row = trial_row("t0", "TERMINATED", dict(fusions[0], seed=0), {"test_accuracy": 0.5})
    assert (row["backbone_a"], row["backbone_b"], row["cut_a"], row["cut_b"]) == (
        "xception", "mobilenetv2", fusions[0]["cut_a"], "block_5_add")


def test_run_rejects_a_cut_of_the_other_backbone(capsys):
    assert cli.main(["run", "--backbones", "xception,mobilenetv2", "--cuts-a", "block_5_add"]) == 2
    assert "unknown xception cut 'block_5_add' in cnn_cuts" in capsys.readouterr().err
