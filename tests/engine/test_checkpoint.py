"""sweep.engine.checkpoint: arrays (PRNG keys included) round-trip, and only the latest and best epochs are kept."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweep.engine.checkpoint import CHECKPOINT_FORMAT, RunCheckpoints, named_arrays, restore_named


def test_round_trip_keeps_keys_and_keeps_latest_and_best(tmp_path):
    tree = {"w": jnp.arange(6.0).reshape(2, 3), "key": jax.random.key(7), "n": jnp.int32(3)}
    checkpoints = RunCheckpoints(tmp_path / "ck")
    for epoch in (1, 2, 3):
        checkpoints.save(epoch, {"state": tree}, {"epoch": epoch}, keep={1})
    assert checkpoints.epochs() == [1, 3]
    assert checkpoints.meta(3) == {"epoch": 3, "checkpoint_format": CHECKPOINT_FORMAT}
    restored = checkpoints.restore(3, {"state": tree})["state"]
    checkpoints.close()
    np.testing.assert_array_equal(restored["w"], tree["w"])
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(tree["key"]))
    assert jax.random.uniform(restored["key"]) == jax.random.uniform(tree["key"])
    assert RunCheckpoints(tmp_path / "ck").latest_epoch() == 3


def test_entries_are_found_by_name_and_a_different_model_is_named_in_the_error():
    tree = {"cnn": {"conv": {"kernel": jnp.ones((3, 3))}}, "head": [jnp.zeros(2), jnp.ones(4)]}
    named = named_arrays(tree)
    assert sorted(named) == ["cnn.conv.kernel", "head.0", "head.1"]
    shuffled = dict(reversed(list(named.items())))  # order does not matter, names do
    np.testing.assert_array_equal(restore_named(tree, shuffled)["head"][1], tree["head"][1])
    with pytest.raises(ValueError, match=r"lacks 1 of the model's 3 arrays \(e.g. \['cnn.conv.kernel'\]\)"):
        restore_named(tree, {"head.0": named["head.0"], "head.1": named["head.1"], "rn.conv.kernel": 0})
    with pytest.raises(ValueError, match=r"head.1 has shape \(2,\), the model needs \(4,\)"):
        restore_named(tree, dict(named, **{"head.1": jnp.zeros(2)}))
