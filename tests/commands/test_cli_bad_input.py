"""Every command refuses bad input before any work: one line on stderr, exit 2, in a few seconds.

A case is one row of CASES: the command line (with {empty}, {stranger} and {missing} standing for an empty folder, a
folder that is not a fusion-sweep results folder, and a path that does not exist) and a word the one line must hold.
Each runs in-process through sweep.cli.main, so a case costs its checks, not a new Python. "A few seconds" is this
process's CPU time (other jobs on the machine do not change it; training or preparing data would), and a case
must not start Ray.
"""
from __future__ import annotations

import sys
import time

import pytest

from sweep.cli import COMMANDS, main

CASES = [
    # run: tracking, resume, the results folder, Ray, the preset, each group of config flags, --set, externals
    ("run --mlflow notaurl://x", "notaurl"),
    ("run --mlflow http://127.0.0.1:9", "no MLflow server answered"),
    ("run --mlflow sqlite:///{missing}/mlflow.db", "does not exist"),
    ("run --mlflow-experiment name", "--mlflow"),
    ("run --resume --out {empty}", "--resume"),
    ("run --out {stranger}", "not a fusion-sweep results folder"),
    ("run --address bogus", "--address"),
    ("run --storage nope://bucket", "--storage"),
    ("run --preset nope", "invalid choice"),
    ("run --from-manifest {missing}", "manifest"),
    ("run --data radiography --data-dir {missing}", "--data-dir"),
    ("run --epochs 0", "epochs"),
    ("run --cnn-cuts nope", "nope"),
    ("run --scheduler nope", "nope"),
    ("run --set train.nope=1", "nope"),
    ("run --external nodir", "NAME=DIR"),
    ("run --external bad-name={empty}", "bad-name"),
    ("run --explain-images x", "--explain-images"),
    ("run --explain-max-evals 1", "explain_max_evals"),
    ("run --difficulty 7", "difficulty"),
    ("run --around nope", "nope"),
    ("run --around cnn:block9_drop+rn:conv2_block1_out/b16/h2048", "block9_drop"),
    ("run --around --seeds 2", "seeds"),
    ("run --init resnet50v2", "BACKBONE=SOURCE"),
    ("run --init vgg16=imagenet", "vgg16"),
    ("run --init resnet50v2=imagenet", "weights fetch resnet50v2"),
    ("run --init resnet50v2={missing}/w.h5", "w.h5"),
    # report, analyze, explain: the results folder and the analysis options
    ("report {missing}", "trials"),
    ("report {empty} --bootstrap x", "--bootstrap"),
    ("analyze {missing}", "no such folder"),
    ("analyze {empty} --size nope", "invalid choice"),
    ("analyze {missing} --effects", "no such folder"),
    ("explain {missing}", "not a folder"),
    ("explain {empty} --masker nope", "nope"),
    ("explain {empty} --images 0", "--images"),
    # train, reproduce, evaluate: model, training, data and output flags
    ("train --model nope", "nope"),
    ("train --epochs 0", "epochs"),
    ("train --lr x", "--lr"),
    ("train --data radiography --data-dir {missing}", "--data-dir"),
    ("train --set nope=1", "nope"),
    ("train --model resnet50v2 --init resnet50v2=imagenet", "weights add"),
    ("train --init cnn={stranger}/notes.txt", "notes.txt"),
    ("reproduce", "--data-dir"),
    ("reproduce --data-dir {empty} --models nope", "--models"),
    ("evaluate {missing}", "RUN_DIR"),
    ("evaluate {empty} --data-dir {missing}", "--data-dir"),
    ("evaluate {empty} --split nope", "invalid choice"),
    # data, layers, profile, bench
    ("data prepare --data radiography", "--data-dir"),
    ("data prepare --split-fractions 0.5,x", "--split-fractions"),
    ("data show --out {empty}/samples.txt", ".png"),
    ("data stream --batch-size 0", "--batch-size"),
    ("layers nope", "invalid choice"),
    ("layers cnn --channels 2", "channels"),
    ("profile --model nope", "invalid choice"),
    ("profile --model cnn --cnn-cut block1_pool", "only apply to --model fusion"),
    ("profile --repeats 0", "--repeats"),
    ("bench --skip nope", "nope"),
    ("bench --models nope", "nope"),
    ("bench --sizes x", "--sizes"),
    # calibrate: the simulated worlds
    ("calibrate --truth nope", "invalid choice"),
    ("calibrate --sweeps 0", "--sweeps"),
    ("calibrate --n-configs 7", "invalid choice"),
    # weights: the cache of pretrained files
    ("weights fetch nope", "nope"),
    ("weights add {missing}/w.h5 --as resnet50v2:imagenet", "w.h5"),
    ("weights add {stranger}/notes.txt --as resnet50v2", "resnet50v2"),
]


def test_every_command_has_a_case():
    assert set(COMMANDS) <= {line.split()[0] for line, _ in CASES}


@pytest.mark.parametrize("line, says", CASES, ids=[line for line, _ in CASES])
def test_bad_input_is_one_line_and_exit_2_before_any_work(line, says, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a case wrongly wrote would land here, not in the checkout
    (tmp_path / "empty").mkdir()
    (tmp_path / "stranger").mkdir()
    (tmp_path / "stranger" / "notes.txt").write_text("mine\n")
    argv = line.format(empty=tmp_path / "empty", stranger=tmp_path / "stranger", missing=tmp_path / "missing").split()
    ray_before = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    start = time.process_time()
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    seconds = time.process_time() - start
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and says in err, err
    assert err.startswith(f"fusion-sweep {argv[0]}"), err
    assert seconds < 5, f"{line}: {seconds:.1f} CPU seconds before the error"
    assert ray_before or not ("ray" in sys.modules and sys.modules["ray"].is_initialized()), f"{line}: Ray started"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "stranger"]  # nothing was written
