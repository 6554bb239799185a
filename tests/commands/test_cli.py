"""cli.main: every command is there or the CLI fails loudly; a UsageError is one line on stderr and exit 2."""
from __future__ import annotations

import pytest

from sweep import UsageError, cli


def test_a_usage_error_anywhere_is_one_line_and_exit_2(monkeypatch, capsys):
    def fails(args):
        raise UsageError("--out /x is not a folder\nchoose another")

    monkeypatch.setattr("sweep.commands.report.run", fails)
    assert cli.main(["report", "anything"]) == 2
    err = capsys.readouterr().err
    assert err == "fusion-sweep report: error: --out /x is not a folder choose another\n"


def test_a_command_that_fails_to_import_is_an_error_not_a_missing_command(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "ghost", ("sweep.commands.ghost", "never built"))
    with pytest.raises(ModuleNotFoundError, match="sweep.commands.ghost"):
        cli.build_parser()


@pytest.mark.parametrize("argv, words", [
    (["train", "--optimizer", "lamb"], "--optimizer lamb: expected one of rmsprop, adam, adamw, sgd"),
    (["train", "--patience", "-1"], "early stopping patience must be >= 1, got -1"),
    (["train", "--set", "pipeline.augment=heavy"], "expected one of none, mild, seed"),
    (["run", "--set", "seeds=0"], "seeds must be >= 1"),
    (["bench", "--skip", "gpu"], "--skip: unknown gpu; choose from steps,conv_layers,compile,pipeline,shap,ray,seeds,checkpoints,"
                                 "flops"),
    (["data", "show", "--out", "grid.jpg"], "--out must name a .png file"),
    (["profile", "--model", "cnn", "--cnn-cut", "block1_drop"], "--cnn-cut only apply to --model fusion"),
])
def test_bad_input_is_reported_before_any_work(argv, words, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and err.count("\n") == 1


def test_user_runs_land_in_runs_unless_out_names_a_folder():
    from sweep.commands import run as run_command
    from sweep.commands import train as train_command
    from sweep.configs.presets import get_preset

    parse = cli.build_parser().parse_args
    assert str(run_command.default_out(parse(["run"]), get_preset("quick"))) == "runs/quick"
    assert str(run_command.default_out(parse(["run", "--preset", "cpu-real"]), get_preset("cpu-real"))) == "runs/cpu-real"
    assert str(run_command.default_out(parse(["run", "--out", "results/quick"]), get_preset("quick"))) == "results/quick"
    config = train_command.config_from_args(parse(["train", "--model", "cnn"]))
    assert str(train_command.default_out(config)) == "runs/train/cnn-synthetic-64px"
    assert parse(["reproduce"]).out == "runs/reproduce"


def test_a_fresh_run_into_a_previous_results_folder_removes_that_runs_outputs(tmp_path):
    """A stale pareto.csv would be read as the new run's front (explanations run before the report rewrites it)."""
    from sweep.commands.run import RUN_OUTPUTS, _prepare_out

    for name in ("pareto.csv", "report.md", "manifest.json", "scaling.json", "notes.txt"):
        (tmp_path / name).write_text("old")
    for name in ("explanations/old_trial", "trials/old_trial"):
        (tmp_path / name).mkdir(parents=True)
    _prepare_out(tmp_path, resume=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # not a run's output: the user's, kept
    assert {"pareto.csv", "explanations"} <= set(RUN_OUTPUTS)


def test_resume_keeps_the_previous_runs_outputs(tmp_path):
    from sweep.commands.run import _prepare_out

    (tmp_path / "pareto.csv").write_text("old")
    _prepare_out(tmp_path, resume=True)
    assert (tmp_path / "pareto.csv").read_text() == "old"
