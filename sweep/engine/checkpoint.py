"""Orbax checkpoints of one run: ONE checkpoint on disk at a time, written atomically.

A checkpoint is step = number of finished epochs, holding `state` and `meta` (JSON: epoch, history, best epoch,
early-stopping counters, classes). `state` holds every array needed to continue: `params`, `rest` (BatchNorm
statistics, dropout RNG) and `opt` (the optimiser's state), and, when the run's selected weights are those of an
earlier epoch (the best so far), that epoch's `best_params` and `best_rest` (weights only: nothing resumes from
them). Each array is stored under its place in the train state, e.g. `params/cnn.block1_conv.kernel` or
`opt/0.nu.fusion_dense.kernel`, so a checkpoint can be read, compared and checked against any model by name.
Orbax writes into a temporary folder and renames it when complete, so a run killed at any moment leaves either
the whole checkpoint or none; the previous one is deleted only after the new one is complete.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from sweep import UsageError

# 2: arrays named by their pytree path (format 1, before it was recorded, numbered the leaves 00000, 00001, ...)
CHECKPOINT_FORMAT = 2


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _key_impl(like):
    """The PRNG implementation of a key array, or of an abstract one (jax.ShapeDtypeStruct from nnx.eval_shape:
    jax has no public accessor for its dtype's implementation; None = JAX's default, what models are built with)."""
    if isinstance(like, jax.ShapeDtypeStruct):
        return getattr(like.dtype, "_impl", None)
    return jax.random.key_impl(like)


def _entry_name(path) -> str:
    """'cnn.block1_conv.kernel' for the path of a leaf (nnx's trailing '.value' dropped)."""
    parts = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
    return ".".join(parts[:-1] if parts and parts[-1] == "value" else parts)


def named_arrays(tree) -> dict[str, Any]:
    """The leaves of `tree` by their path name; typed PRNG keys become their raw key data."""
    named = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        named[_entry_name(path)] = jax.random.key_data(leaf) if _is_key(leaf) else leaf
    return named


def restore_named(template, saved: dict[str, Any], where: str = "checkpoint"):
    """Inverse of named_arrays, shaped like `template`: every entry found by name, with its shape and dtype checked
    (typed PRNG keys re-wrapped like the template's)."""
    paths_and_leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [_entry_name(path) for path, _ in paths_and_leaves]
    missing = [name for name in names if name not in saved]
    if missing:
        raise ValueError(f"{where} lacks {len(missing)} of the model's {len(names)} arrays (e.g. {missing[:3]}); "
                         f"it holds {sorted(saved)[:3]}...: it was written for another model")
    out = []
    for name, (_, like) in zip(names, paths_and_leaves):
        value = saved[name]
        if _is_key(like):
            value = jax.random.wrap_key_data(np.asarray(value), impl=_key_impl(like))
        else:
            value = jax.numpy.asarray(value, dtype=like.dtype)
            if value.shape != like.shape:
                raise ValueError(f"{where}: {name} has shape {value.shape}, the model needs {like.shape}")
        out.append(value)
    return jax.tree.unflatten(treedef, out)


class RunCheckpoints:
    """The checkpoints folder of one run."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=False,  # on_epoch must only see checkpoints that are on disk
            cleanup_tmp_directories=True,  # leftovers of a save that was killed
            create=True,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def epochs(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_epoch(self) -> int | None:
        steps = self.epochs()
        return steps[-1] if steps else None

    def save(self, epoch: int, sections: dict[str, Any], meta: dict, *, keep: set[int] = frozenset()) -> None:
        """Write checkpoint `epoch` durably, then delete every other one not in `keep`.
        `sections` maps a name ('params', 'rest', 'opt', ...) to a pytree, stored by path name."""
        arrays = {name: named_arrays(tree) for name, tree in sections.items()}
        meta = {**meta, "checkpoint_format": CHECKPOINT_FORMAT}
        if epoch in self.manager.all_steps():
            self.manager.delete(epoch)
        self.manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(arrays),
                                                          meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()
        for step in self.manager.all_steps():
            if step != epoch and step not in keep:
                self.manager.delete(step)

    def meta(self, epoch: int) -> dict:
        """The JSON saved with checkpoint `epoch`; UsageError when an older fusion-sweep wrote it."""
        meta = dict(self.manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])
        if meta.get("checkpoint_format") != CHECKPOINT_FORMAT:
            raise UsageError(f"{self.directory} holds checkpoints of an older fusion-sweep (arrays numbered, not "
                             "named by their place in the model); rerun with --overwrite to train afresh")
        return meta

    def restore(self, epoch: int, templates: dict[str, Any]) -> dict[str, Any]:
        """The sections of checkpoint `epoch` named in `templates` ({'params': like, ...}), each shaped like its
        template; a section the checkpoint lacks is left out."""
        restored = self.manager.restore(epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
        saved = restored["state"]
        return {name: restore_named(template, dict(saved[name]), f"{self.directory} epoch {epoch} {name}")
                for name, template in templates.items() if name in saved}

    def restore_weights(self, epoch: int, template) -> Any | None:
        """The weights ({'params', 'rest'} shaped like `template`) of `epoch`: the latest checkpoint's own, or the
        best epoch's weights it carries (an older layout kept that epoch as a checkpoint of its own); None when
        no checkpoint holds them."""
        latest = self.latest_epoch()
        if latest is None:
            return None
        if epoch == latest:
            return self.restore(latest, template)
        if self.meta(latest).get("best_epoch") == epoch:
            best = self.restore(latest, {"best_" + name: like for name, like in template.items()})
            if len(best) == len(template):
                return {name[len("best_"):]: value for name, value in best.items()}
        return self.restore(epoch, template) if epoch in self.epochs() else None

    def close(self) -> None:
        self.manager.close()
