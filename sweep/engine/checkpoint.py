"""Orbax checkpoints of one run: one per finished epoch (the latest and the best are kept), atomic on disk.

A checkpoint is step = number of finished epochs, holding `state` (every array of the run: model
params and statistics, dropout RNG, optimiser state, flattened to numbered leaves) and `meta` (JSON:
epoch, history, best epoch, early-stopping counters, classes). Orbax writes into a temporary folder and
renames it when complete, so a run killed at any moment leaves either the whole checkpoint or none.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def flatten_arrays(tree) -> dict[str, Any]:
    """Leaves of `tree` as {'00000': array, ...}; typed PRNG keys become their raw key data."""
    leaves = jax.tree.leaves(tree)
    return {f"{i:05d}": (jax.random.key_data(x) if _is_key(x) else x) for i, x in enumerate(leaves)}


def unflatten_arrays(template, saved: dict[str, Any]):
    """Inverse of flatten_arrays, shaped like `template` (same tree structure, keys re-wrapped like it)."""
    leaves, treedef = jax.tree.flatten(template)
    if len(saved) != len(leaves):
        raise ValueError(f"checkpoint holds {len(saved)} arrays but the model/optimiser needs {len(leaves)}")
    out = []
    for i, like in enumerate(leaves):
        value = saved[f"{i:05d}"]
        if _is_key(like):
            value = jax.random.wrap_key_data(np.asarray(value), impl=jax.random.key_impl(like))
        else:
            value = jax.numpy.asarray(value, dtype=like.dtype)
            if value.shape != like.shape:
                raise ValueError(f"checkpoint array {i} has shape {value.shape}, expected {like.shape}")
        out.append(value)
    return jax.tree.unflatten(treedef, out)


class RunCheckpoints:
    """The checkpoints folder of one run."""

    def __init__(self, directory: str | Path):
        import orbax.checkpoint as ocp

        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=False,  # on_epoch must only see checkpoints that are on disk
            cleanup_tmp_directories=True,  # leftovers of a save that was killed
            create=True,
        )
        self._ocp = ocp
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def epochs(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_epoch(self) -> int | None:
        steps = self.epochs()
        return steps[-1] if steps else None

    def save(self, epoch: int, arrays: dict[str, Any], meta: dict, *, keep: set[int]) -> None:
        """Write checkpoint `epoch` durably, then delete every other one not in `keep` (e.g. the best)."""
        ocp = self._ocp
        if epoch in self.manager.all_steps():
            self.manager.delete(epoch)
        self.manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(arrays),
                                                          meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()
        for step in self.manager.all_steps():
            if step != epoch and step not in keep:
                self.manager.delete(step)

    def meta(self, epoch: int) -> dict:
        ocp = self._ocp
        return dict(self.manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])

    def arrays(self, epoch: int) -> dict[str, Any]:
        ocp = self._ocp
        restored = self.manager.restore(epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
        return dict(restored["state"])

    def close(self) -> None:
        self.manager.close()
