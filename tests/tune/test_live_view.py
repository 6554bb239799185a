"""Live progress a person can read: status lines redrawn in place on a terminal, plain periodic lines in a log, a
summary line per finished trial, and what each status line says."""
from __future__ import annotations

import io
import re
from types import SimpleNamespace

from sweep.tune.live_view import LiveView, eta_seconds, status_line
from sweep.tune.progress import Progress


def screen(text: str) -> list[str]:
    """The lines a terminal shows after `text`: handles newline, carriage return, cursor-up and clear-below."""
    lines, row = [""], 0
    for token in re.split(r"(\x1b\[\d*A|\x1b\[J|\r|\n)", text):
        if token == "\n":
            row += 1
            lines += [""] * (row + 1 - len(lines))
        elif token == "\r":
            pass  # every write here starts at a line start
        elif token.startswith("\x1b[") and token.endswith("A"):
            row -= int(token[2:-1] or 1)
        elif token == "\x1b[J":
            del lines[row + 1:]
            lines[row] = ""
        elif token:
            lines[row] += token
    return [line for line in lines if line]


def test_a_terminal_shows_each_running_trial_once_with_finished_lines_above():
    out, now = io.StringIO(), [0.0]
    view = LiveView(out, interactive=True, refresh=2.0, clock_fn=lambda: now[0])
    view.update(["[00:05] 0/3 done, 2 running", "  a epoch 1/3", "  b epoch 1/3"])
    now[0] = 1.0
    assert not view.due()  # redrawn at most every 2 s
    view.say("done a: test_accuracy 0.900")
    now[0] = 3.0
    assert view.due()
    view.update(["[00:08] 1/3 done, 1 running", "  b epoch 2/3"])
    assert screen(out.getvalue()) == ["done a: test_accuracy 0.900", "[00:08] 1/3 done, 1 running", "  b epoch 2/3"]
    view.close()
    assert screen(out.getvalue()) == ["done a: test_accuracy 0.900"]


def test_terminal_lines_are_cut_to_its_width_so_redrawing_stays_in_place(monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")
    out = io.StringIO()
    view = LiveView(out, interactive=True)
    view.update(["x" * 100])
    assert screen(out.getvalue()) == ["x" * 28 + "…"]


def test_a_log_gets_plain_status_lines_every_interval_and_no_escape_codes():
    out, now = io.StringIO(), [0.0]
    view = LiveView(out, interactive=False, log_every=30.0, clock_fn=lambda: now[0])
    view.update(["header", "  a epoch 1/3"])
    view.say("done b")
    now[0] = 10.0
    assert not view.due()
    now[0] = 31.0
    assert view.due()
    view.update(["header", "  a epoch 2/3"])
    view.close()
    assert out.getvalue() == "header\n  a epoch 1/3\ndone b\nheader\n  a epoch 2/3\n"


def test_a_status_line_says_epoch_step_loss_val_accuracy_speed_and_eta():
    entry = {"phase": "training", "epoch": 2, "epochs": 3, "step": 10, "steps": 20, "loss": 0.4123,
             "val_accuracy": 0.8125, "images_per_second": 286.4, "step_seconds": 0.5, "time": 100.0}
    assert eta_seconds(entry) == (1 * 20 + 10) * 0.5
    line = status_line("cnn:block3_drop/b16/h2048 seed 1", entry, now=101.0)
    assert line == ("cnn:block3_drop/b16/h2048 seed 1  epoch 2/3  step 10/20  loss 0.412  val_acc 0.812  "
                    "286 img/s  ETA 0:15")
    assert status_line("x", {"phase": "starting", "time": 0.0}, now=90.0) == \
        "x  starting (loading data, compiling)  (no word for 1:30)"


class FakeBoard:
    def __init__(self, entries):
        self.entries, self.forgotten = entries, []

    def snapshot(self):
        return self.entries

    def forget_trial(self, trial_id):
        self.forgotten.append(trial_id)


def test_progress_shows_board_posts_for_running_trials_and_a_summary_when_one_finishes():
    trial = SimpleNamespace(trial_id="t1", config={"trial": {"model": "cnn", "seed": 0}}, status="TERMINATED",
                            last_result={"test_accuracy": 0.9, "val_accuracy": 0.85, "params": 3184322,
                                         "epochs": 7, "wall_seconds": 65})
    board = FakeBoard({"t1": {"trial": "t1", "name": "cnn seed 0", "phase": "training", "epoch": 2, "epochs": 7,
                              "step": 10, "steps": 88, "loss": 0.5, "step_seconds": 0.1, "time": 1e18}})
    out = io.StringIO()
    progress = Progress(2, board=board, view=LiveView(out, interactive=False, log_every=0.0))
    callback = progress.callback()
    callback.on_trial_start(0, [], trial)
    callback.on_step_end(0, [])
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("0/2 done, 1 running")
    assert lines[1].startswith("  cnn seed 0  epoch 2/7  step 10/88  loss 0.500") and "ETA" in lines[1]
    callback.on_trial_complete(0, [], trial)
    assert "done cnn seed 0: test_accuracy 0.900, val_acc 0.850, 3,184,322 params, 7 epochs in 1:05 | 1/2 done" \
        in out.getvalue()
    assert board.forgotten == ["t1"]
