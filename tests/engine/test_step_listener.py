"""train_and_evaluate's on_step listener: the status a sweep's live view shows while an epoch runs."""
from __future__ import annotations


from sweep.engine.progress import EpochProgress

TOTALS = {"count": 40.0, "loss_sum": 20.0, "correct": 30.0}


def test_the_listener_hears_epoch_step_loss_and_a_rate_that_leaves_the_compiling_step_out():
    heard = []
    progress = EpochProgress(False, epochs=3, steps=10, batch_size=8, listener=heard.append)
    assert progress.due()  # the first step after compiling is reported at once
    progress.update(1, 1, TOTALS)
    assert not progress.due()  # then every couple of seconds
    progress.last -= 10.0
    progress.mark = (progress.mark[0] - 0.5, 1, 1)  # 4 more steps in 0.5 s
    progress.update(1, 5, TOTALS)
    first, second = heard
    assert first["images_per_second"] is None and first["step_seconds"] is None
    assert {k: first[k] for k in ("epoch", "epochs", "step", "steps", "loss", "accuracy")} == \
        {"epoch": 1, "epochs": 3, "step": 1, "steps": 10, "loss": 0.5, "accuracy": 0.75}
    assert 0.12 < second["step_seconds"] < 0.2 and 40 < second["images_per_second"] < 70


def test_without_a_terminal_or_listener_nothing_is_due():
    assert not EpochProgress(False, epochs=1, steps=1, batch_size=1).due()


def test_seeds_trained_in_turn_keep_their_rate_and_count_in_the_eta():
    """Three seeds share the bar (sequential seeds): when the second seed's pass starts, the rate is the last one
    measured (not the time since the epoch began), and the ETA counts every pass still to run."""
    heard = []
    progress = EpochProgress(False, epochs=2, steps=10, batch_size=8, listener=heard.append, passes=3)
    progress.update(1, 1, TOTALS)
    progress.mark = (progress.mark[0] - 0.9, 1, 1)  # steps 2-10 of seed 0 in 0.9 s: 0.1 s a step
    progress.update(1, 10, TOTALS)
    progress.update(1, 2, TOTALS)  # seed 1's pass of epoch 1
    seed0, seed1 = heard[1], heard[2]
    assert abs(seed0["step_seconds"] - 0.1) < 0.02 and seed1["step_seconds"] == seed0["step_seconds"]
    # seed 1: 8 steps left, seed 2's pass of epoch 1 (10), then epoch 2 for three seeds (30)
    assert abs(seed1["eta_seconds"] - 48 * seed1["step_seconds"]) < 1e-9
