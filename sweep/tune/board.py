"""The channel for intra-epoch progress: a small named Ray actor that trials post their status to and the driver
reads. It works on a multi-node cluster (actors are cluster-wide) and stays out of Ray Tune's results, so schedulers
such as ASHA, which count every `tune.report` as an iteration, never see it. Posting is fire-and-forget."""
from __future__ import annotations

import os
import time
from typing import Callable

BOARD_ENV = "FUSION_SWEEP_PROGRESS_BOARD"  # the actor's name, handed to trials through Ray's runtime_env


class Board:
    """Latest status per row (a row: one configuration x seed); the driver takes a snapshot every few seconds."""

    def __init__(self):
        self.entries: dict[str, dict] = {}

    def post(self, key: str, entry: dict) -> None:
        self.entries[key] = {**entry, "time": time.time()}

    def snapshot(self) -> dict[str, dict]:
        return self.entries

    def forget_trial(self, trial_id: str) -> None:
        """Drop every row of a finished Ray trial (one trial may train several seeds)."""
        self.entries = {k: v for k, v in self.entries.items() if v.get("trial") != trial_id}


def board_name() -> str:
    return f"fusion-sweep-progress-{os.getpid()}-{time.time_ns() % 10**9}"


class BoardClient:
    """The driver's side: starts the named actor (no CPU reserved, so it never takes a trial's slot) and reads it
    without ever blocking Ray Tune's loop: each read returns the newest snapshot that has arrived and asks for the
    next one (the actor may take a while to start on a busy machine)."""

    def __init__(self, name: str):
        import ray

        self.actor = ray.remote(num_cpus=0)(Board).options(name=name).remote()
        self.pending = self.actor.snapshot.remote()
        self.latest: dict[str, dict] = {}

    def snapshot(self) -> dict[str, dict]:
        """The newest snapshot received ({} before the first); raises if the actor died."""
        import ray

        ready, _ = ray.wait([self.pending], timeout=0)
        if ready:
            self.latest = ray.get(self.pending)
            self.pending = self.actor.snapshot.remote()
        return self.latest

    def forget_trial(self, trial_id: str) -> None:
        self.actor.forget_trial.remote(trial_id)

    def stop(self) -> None:
        import ray

        ray.kill(self.actor)


def poster() -> Callable[[str, dict], None]:
    """In a trial: a function that posts a row's status to the driver's board, or does nothing when there is no
    board (a trial run outside `fusion-sweep run`, or a driver that started none)."""
    name = os.environ.get(BOARD_ENV)
    if not name:
        return lambda key, entry: None
    import ray

    try:
        board = ray.get_actor(name)
    except ValueError:
        return lambda key, entry: None
    return lambda key, entry: board.post.remote(key, entry)
