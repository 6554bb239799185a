"""K seeds of one configuration stepped together: one vectorised program (vmap) or one compiled step reused in turn.

Both keep one TrainState per seed and train an epoch for the seeds asked to (`batches`: seed index -> that seed's
own batch iterator, so each seed keeps its data order and augmentation). `VmapSeeds` stacks the states on a leading
axis and runs every seed's step as ONE jitted vmapped step, an `active` mask leaving the others untouched;
`SequentialSeeds` keeps the states apart and runs the same compiled step for one seed after another. Either way
there is one compilation of the train step for all seeds, and results per seed do not depend on the siblings.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from data.pipeline import eval_batches
from sweep.engine.evaluate import EVAL_KEYS, SplitPredictions, device_batches, evaluate_split
from sweep.engine.steps import (TrainState, init_totals, make_seeds_eval_step, make_seeds_train_step, make_train_step,
                                stack_trees, tree_slice)

SEED_MODES = ("vmap", "sequential")
# monitor(step, totals) after each step; totals() fetches the running sums of the seed(s) being stepped (summed over
# vectorised seeds, with bad_step >= 0 once all of them went bad). Returning True ends their epoch early.
Monitor = Callable[[int, Callable[[], dict]], bool]


class EpochTotals(NamedTuple):
    """One seed's epoch: its running sums on the host, the seconds its steps took, and (seconds, images) of the step
    that compiled when that happened in this epoch."""

    totals: dict
    seconds: float
    compile: tuple[float, float] | None


class SequentialSeeds:
    """One TrainState per seed, stepped one seed after another by the same compiled step."""

    mode = "sequential"

    def __init__(self, states: list[TrainState], train_step: Callable, eval_step: Callable, keys: tuple[str, ...]):
        self.states, self.train_step, self.eval_step, self.keys = list(states), train_step, eval_step, keys
        self.compile_seconds: float | None = None

    def state(self, index: int) -> TrainState:
        return self.states[index]

    def train_epoch(self, batches: Mapping[int, Iterator[dict]], monitor: Monitor) -> dict[int, EpochTotals]:
        """Train each listed seed through its own batches, one seed after another."""
        done: dict[int, EpochTotals] = {}
        for index, seed_batches in batches.items():
            start, compile_step = time.perf_counter(), None
            state = self.states[index]._replace(totals=init_totals())
            for step, batch in enumerate(device_batches(seed_batches, self.keys), start=1):
                if self.compile_seconds is None:  # the first step compiles: timed apart from the steady rate
                    state = self.train_step(state, batch)[0]
                    jax.block_until_ready(state.totals)
                    self.compile_seconds = time.perf_counter() - start
                    compile_step = (self.compile_seconds, float(np.asarray(batch["valid"]).sum()))
                else:
                    state = self.train_step(state, batch)[0]
                if monitor(step, lambda: jax.device_get(state.totals)):
                    break
            self.states[index] = state
            done[index] = EpochTotals(jax.device_get(state.totals), time.perf_counter() - start, compile_step)
        return done

    def validate(self, split, pipeline, batch_size: int, indices) -> dict[int, SplitPredictions]:
        """The current weights of the seeds at `indices` on `split`."""
        return {i: evaluate_split(self.eval_step, self.states[i].params, self.states[i].rest, split, pipeline,
                                  batch_size) for i in indices}


class VmapSeeds:
    """The seeds' TrainStates stacked on a leading axis, stepped together by one jitted vmapped step."""

    mode = "vmap"

    def __init__(self, states: list[TrainState], seeds_train_step: Callable, seeds_eval_step: Callable,
                 keys: tuple[str, ...]):
        self.count = len(states)
        self.stacked = stack_trees(list(states))
        self.train_step, self.eval_step, self.keys = seeds_train_step, seeds_eval_step, keys
        self.compile_seconds: float | None = None

    def state(self, index: int) -> TrainState:
        return tree_slice(self.stacked, index)

    def _stacked_batches(self, batches: Mapping[int, Iterator[dict]]) -> Iterator[dict]:
        """One stacked batch per step: each listed seed's own batch; an unlisted seed's slot repeats a listed
        seed's batch (its step is masked out, so what it reads does not matter, and nothing extra is read)."""
        order = list(batches)
        for group in zip(*(batches[i] for i in order)):
            by_index = dict(zip(order, group))
            filler = group[0]
            yield {key: np.stack([np.asarray(by_index.get(i, filler)[key]) for i in range(self.count)])
                   for key in self.keys if key in filler}

    def train_epoch(self, batches: Mapping[int, Iterator[dict]], monitor: Monitor) -> dict[int, EpochTotals]:
        """Train the listed seeds together, each through its own batches; the others' states stay as they are."""
        listed, start, compile_step = list(batches), time.perf_counter(), None
        active = jnp.asarray([i in batches for i in range(self.count)])
        self.stacked = self.stacked._replace(totals=stack_trees([init_totals()] * self.count))

        def totals() -> dict:  # the listed seeds' sums; bad_step >= 0 only once every one of them went bad
            host = jax.device_get(self.stacked.totals)
            per_seed = [{k: v[i] for k, v in host.items()} for i in listed]
            summed = {k: sum(float(t[k]) for t in per_seed) for k in ("loss_sum", "correct", "count", "steps")}
            bad = [int(t["bad_step"]) for t in per_seed]
            return {**summed, "bad_step": min(bad) if min(bad) >= 0 else -1}

        for step, batch in enumerate(device_batches(self._stacked_batches(batches), self.keys), start=1):
            if self.compile_seconds is None:
                self.stacked = self.train_step(self.stacked, batch, active)[0]
                jax.block_until_ready(self.stacked.totals)
                self.compile_seconds = time.perf_counter() - start
                compile_step = (self.compile_seconds, float(np.asarray(batch["valid"])[listed[0]].sum()))
            else:
                self.stacked = self.train_step(self.stacked, batch, active)[0]
            if monitor(step, totals):
                break
        host, seconds = jax.device_get(self.stacked.totals), time.perf_counter() - start
        return {i: EpochTotals({k: v[i] for k, v in host.items()}, seconds, compile_step) for i in listed}

    def validate(self, split, pipeline, batch_size: int, indices) -> dict[int, SplitPredictions]:
        """The current weights of the seeds at `indices` on `split`, in one pass: each batch is read once and
        scored by every seed at once."""
        outputs, valids, labels = [], [], []
        for batch in device_batches(eval_batches(split, pipeline, batch_size=batch_size), EVAL_KEYS):
            outputs.append(self.eval_step(self.stacked.params, self.stacked.rest, batch))
            valids.append(batch["valid"])
            labels.append(batch["label"])
        if not outputs:
            return {i: SplitPredictions(np.zeros((0,), np.int32), np.zeros((0, 0), np.float32), float("nan"))
                    for i in indices}
        valid = np.concatenate([np.asarray(v) for v in valids])
        label = np.concatenate([np.asarray(x) for x in labels])[valid]
        ce = np.concatenate([np.asarray(o[0]) for o in outputs], axis=1)[:, valid]
        probs = np.concatenate([np.asarray(o[1]) for o in outputs], axis=1)[:, valid]
        return {i: SplitPredictions(label, probs[i], float(ce[i].mean())) for i in indices}


def make_seed_steps(mode: str, states: list[TrainState], *, graphdef, eval_graph, tx, pipeline, class_weights,
                    augment_cnn_only: bool, eval_step: Callable) -> SequentialSeeds | VmapSeeds:
    """The seeds' states behind one compiled train step, vectorised (`vmap`) or reused in turn (`sequential`).
    `eval_step` is the single-model eval step (shared with the final evaluation)."""
    if mode not in SEED_MODES:
        raise ValueError(f"seed mode must be one of {SEED_MODES}, got {mode!r}")
    keys = EVAL_KEYS + (("clean_image",) if augment_cnn_only else ())
    options = dict(class_weights=class_weights, augment_cnn_only=augment_cnn_only)
    if mode == "sequential":
        return SequentialSeeds(states, make_train_step(graphdef, tx, pipeline, **options), eval_step, keys)
    return VmapSeeds(states, make_seeds_train_step(graphdef, tx, pipeline, **options),
                     make_seeds_eval_step(eval_graph, pipeline), keys)
