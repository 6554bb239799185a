"""train_and_evaluate's on_step listener: the status a sweep's live view shows while an epoch runs. The progress
reads a clock the test sets, so no assert depends on how fast this machine is."""
from __future__ import annotations

from sweep.engine.progress import STEP_LISTENER_SECONDS, EpochProgress

TOTALS = {"count": 40.0, "loss_sum": 20.0, "correct": 30.0}


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_listener_hears_epoch_step_loss_and_a_rate_that_leaves_the_compiling_step_out():
    heard, clock = [], Clock()
    progress = EpochProgress(False, epochs=3, steps=10, batch_size=8, listener=heard.append, clock=clock)
    assert progress.due()  # the first step after compiling is reported at once
    progress.update(1, 1, TOTALS)
    clock.now += STEP_LISTENER_SECONDS / 2
    assert not progress.due()  # then every couple of seconds
    clock.now += STEP_LISTENER_SECONDS
    assert progress.due()
    progress.update(1, 5, TOTALS)  # 4 more steps in 1.5 listener periods
    first, second = heard
    assert first["images_per_second"] is None and first["step_seconds"] is None
    assert {k: first[k] for k in ("epoch", "epochs", "step", "steps", "loss", "accuracy")} == \
        {"epoch": 1, "epochs": 3, "step": 1, "steps": 10, "loss": 0.5, "accuracy": 0.75}
    step_seconds = 1.5 * STEP_LISTENER_SECONDS / 4
    assert abs(second["step_seconds"] - step_seconds) < 1e-9
    assert abs(second["images_per_second"] - 8 / step_seconds) < 1e-6


def test_without_a_terminal_or_listener_nothing_is_due():
    assert not EpochProgress(False, epochs=1, steps=1, batch_size=1).due()


def test_seeds_trained_in_turn_keep_their_rate_and_count_in_the_eta():
    """Three seeds share the bar (sequential seeds): when the second seed's pass starts, the rate is the last one
    measured (not the time since the epoch began), and the ETA counts every pass still to run."""
    heard, clock = [], Clock()
    progress = EpochProgress(False, epochs=2, steps=10, batch_size=8, listener=heard.append, passes=3, clock=clock)
    progress.update(1, 1, TOTALS)
    clock.now += 0.9  # steps 2-10 of seed 0 in 0.9 s: 0.1 s a step
    progress.update(1, 10, TOTALS)
    clock.now += 5.0  # seed 1's pass of epoch 1 starts much later: its rate is still seed 0's
    progress.update(1, 2, TOTALS)
    seed0, seed1 = heard[1], heard[2]
    assert abs(seed0["step_seconds"] - 0.1) < 1e-9 and seed1["step_seconds"] == seed0["step_seconds"]
    # seed 1: 8 steps left, seed 2's pass of epoch 1 (10), then epoch 2 for three seeds (30)
    assert abs(seed1["eta_seconds"] - 48 * seed1["step_seconds"]) < 1e-9
