"""sweep.engine.checkpoint: arrays (PRNG keys included) round-trip, and only the latest and best epochs are kept."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sweep.engine.checkpoint import RunCheckpoints, flatten_arrays, unflatten_arrays


def test_round_trip_keeps_keys_and_keeps_latest_and_best(tmp_path):
    tree = {"w": jnp.arange(6.0).reshape(2, 3), "key": jax.random.key(7), "n": jnp.int32(3)}
    checkpoints = RunCheckpoints(tmp_path / "ck")
    for epoch in (1, 2, 3):
        checkpoints.save(epoch, {"state": flatten_arrays(tree)}, {"epoch": epoch}, keep={1})
    assert checkpoints.epochs() == [1, 3]
    assert checkpoints.meta(3) == {"epoch": 3}
    restored = unflatten_arrays(tree, dict(checkpoints.arrays(3)["state"]))
    checkpoints.close()
    np.testing.assert_array_equal(restored["w"], tree["w"])
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(tree["key"]))
    assert jax.random.uniform(restored["key"]) == jax.random.uniform(tree["key"])
    assert RunCheckpoints(tmp_path / "ck").latest_epoch() == 3
