"""Partition SHAP for many images at once: shap's Owen recursion per image, the model fed full fixed-size batches.

shap's PartitionExplainer explains one image at a time and calls the model once per round of its recursion
(2, 8, 32, then `round_size` masked copies), so a model compiled for a fixed batch mostly pads. Here each image's
recursion is a small state machine (`ImageGame`) doing exactly what `PartitionExplainer.owen` does with
`fixed_context=None` for that image; `play` interleaves many of them and packs their pending rows into batches
of `batch_size`, so rounds of different images (and different tree levels) share one model call. The only
change from shap is the tie-breaker of equal priorities: shap draws it from numpy's global random state, here
each image draws from its own `RandomState(seed)`, so an image's map does not depend on its neighbours.
tests/explain/test_explain_owen.py checks the maps equal shap's for the same masker, evals and seed.
"""
from __future__ import annotations

import collections
import dataclasses
import heapq
import time
from typing import Callable

import numpy as np
from shap.explainers._partition import lower_credit  # shap's own credit lowering, for identical maps
from shap.utils import make_masks

Rows = Callable[[np.ndarray], np.ndarray]  # (n,M) bool masks of one image -> (n,H,W,C) masked copies


@dataclasses.dataclass(frozen=True)
class PartitionTree:
    """shap.maskers.Image's axis-aligned partition of an (H,W,C) image, with each node's pixels (CSR)."""

    clustering: np.ndarray  # (M-1, 4): left, right, distance, size, as scipy's linkage
    indptr: np.ndarray  # node k's pixels are indices[indptr[k]:indptr[k+1]]
    indices: np.ndarray

    @property
    def features(self) -> int:
        return len(self.clustering) + 1

    @staticmethod
    def of(masker) -> "PartitionTree":
        matrix = make_masks(masker.clustering)
        return PartitionTree(masker.clustering, matrix.indptr, matrix.indices)

    def pixels(self, node: int) -> np.ndarray:
        return self.indices[self.indptr[node]:self.indptr[node + 1]]


class ImageGame:
    """One image's Owen recursion (shap 0.51 PartitionExplainer.owen, fixed_context=None), one round at a time:
    `start()` and `advance(outputs)` return the masks whose model outputs the next round needs ([] when done)."""

    def __init__(self, tree: PartitionTree, target: int, max_evals: int, round_size: int, seed: int = 0):
        if max_evals < 3:
            raise ValueError(f"max_evals must be >= 3 (2 go to the full and empty images), got {max_evals}")
        self.tree, self.target, self.round_size = tree, int(target), int(round_size)
        self.budget = int(max_evals) - 2  # as shap: the empty and the full image are evaluated first
        self.dvalues = np.zeros(2 * tree.features - 1)
        self.evals = 0  # recursion evaluations so far (shap's eval_count)
        self.rng = np.random.RandomState(seed)
        self.heap: list = []
        self.batch: list = []  # the nodes whose children's outputs are pending
        self.base: tuple[float, float] | None = None  # outputs on the empty and the full image

    @property
    def total_evals(self) -> int:
        return self.evals + 2

    def start(self) -> np.ndarray:
        """The empty and full images plus the root's two children (their masks do not depend on outputs)."""
        features = self.tree.features
        empty = np.zeros(features, dtype=bool)
        heapq.heappush(self.heap, (0, 0, (empty, None, None, 2 * features - 2, 1.0)))
        return np.concatenate([np.stack([empty, ~empty]), self._collect()])

    def advance(self, outputs: np.ndarray) -> np.ndarray:
        """Take the outputs of the last masks (rows of class probabilities); return the next round's masks."""
        values = np.asarray(outputs, dtype=np.float64)[:, self.target]
        if self.base is None:
            self.base, values = (float(values[0]), float(values[1])), values[2:]
            self.batch = [(m00, m10, m01, *self.base, *rest) for m00, m10, m01, _, _, *rest in self.batch]
        self._expand(values)
        return self._collect()

    def _collect(self) -> np.ndarray:
        """Pop the highest-priority nodes into the next round (leaves take their credit on the way)."""
        clustering, features = self.tree.clustering, self.tree.features
        masks: list[np.ndarray] = []
        self.batch = []
        while self.heap:
            if self.evals >= self.budget:  # out of evaluations: internal nodes keep what is left
                while self.heap:
                    _, _, (_, f00, f11, ind, weight) = heapq.heappop(self.heap)
                    self.dvalues[ind] += (f11 - f00) * weight
                break
            while self.heap and len(masks) < self.round_size and self.evals + len(masks) < self.budget:
                _, _, (m00, f00, f11, ind, weight) = heapq.heappop(self.heap)
                if ind < features or clustering[ind - features, 2] < 0:
                    self.dvalues[ind] += (f11 - f00) * weight
                    continue
                left, right = int(clustering[ind - features, 0]), int(clustering[ind - features, 1])
                m10, m01 = m00.copy(), m00.copy()
                m10[self.tree.pixels(left)] = True
                m01[self.tree.pixels(right)] = True
                self.batch.append((m00, m10, m01, f00, f11, ind, left, right, weight))
                masks += [m10, m01]
            if self.batch:
                break
        return np.stack(masks) if masks else np.zeros((0, features), dtype=bool)

    def _expand(self, values: np.ndarray) -> None:
        """Push each evaluated node's four children, prioritised by how much their side changed the output."""
        self.evals += 2 * len(self.batch)
        push, draw = heapq.heappush, self.rng.randn
        for i, (m00, m10, m01, f00, f11, ind, left, right, weight) in enumerate(self.batch):
            f10, f01 = float(values[2 * i]), float(values[2 * i + 1])
            half = weight / 2
            push(self.heap, (-abs(f10 - f00) * half, draw(), (m00, f00, f10, left, half)))
            push(self.heap, (-abs(f01 - f00) * half, draw(), (m00, f00, f01, right, half)))
            push(self.heap, (-abs(f11 - f01) * half, draw(), (m01, f01, f11, left, half)))
            push(self.heap, (-abs(f11 - f10) * half, draw(), (m10, f10, f11, right, half)))
        self.batch = []

    def values(self) -> np.ndarray:
        """Per-feature attributions (M,): the tree's credit lowered onto its leaves, as shap does."""
        out = self.dvalues.copy()
        lower_credit(len(out) - 1, 0, self.tree.features, out, self.tree.clustering)
        return out[:self.tree.features]


@dataclasses.dataclass
class PlayStats:
    seconds: float
    model_seconds: float
    model_calls: int
    rows: int  # model evaluations (rows sent to the model; padding is the model function's business)


def play(games: list[ImageGame], rows_of: list[Rows], predict: Callable[[np.ndarray], np.ndarray],
         batch_size: int, in_flight: int = 8) -> PlayStats:
    """Run the games to the end, `in_flight` at a time, sending the model batches of exactly `batch_size` rows
    whenever that many are pending, and a short batch only when every running game waits on its outputs."""
    start = time.perf_counter()
    waiting = collections.deque(range(len(games)))
    queue: collections.deque[tuple[int, np.ndarray]] = collections.deque()  # (game, masked rows) to evaluate
    owed: dict[int, list[np.ndarray]] = {}  # game -> outputs received for its current round
    pending: dict[int, int] = {}  # game -> rows of its current round not yet evaluated
    stats = PlayStats(0.0, 0.0, 0, 0)

    def submit(game: int, masks: np.ndarray) -> None:
        if len(masks) == 0:  # finished: let the next image in
            pending.pop(game, None)
            if waiting:
                submit(waiting[0], games[waiting.popleft()].start())
            return
        pending[game], owed[game] = len(masks), []
        queue.append((game, rows_of[game](masks)))

    for _ in range(min(in_flight, len(games))):
        submit(waiting[0], games[waiting.popleft()].start())
    while queue:  # a short batch happens only when every running game waits on rows already queued
        take, parts, owners = batch_size, [], []
        while queue and take:
            game, rows = queue.popleft()
            if len(rows) > take:
                queue.appendleft((game, rows[take:]))
                rows = rows[:take]
            parts.append(rows)
            owners.append((game, len(rows)))
            take -= len(rows)
        t0 = time.perf_counter()
        outputs = np.asarray(predict(np.concatenate(parts)))
        stats.model_seconds += time.perf_counter() - t0
        stats.model_calls += 1
        stats.rows += len(outputs)
        at = 0
        for game, n in owners:
            owed[game].append(outputs[at:at + n])
            at += n
            pending[game] -= n
            if pending[game] == 0:
                submit(game, games[game].advance(np.concatenate(owed.pop(game))))
    stats.seconds = time.perf_counter() - start
    return stats
