"""Flax NNX models of the seed paper: its CNN, ResNet50V2 and their parameterized fusion (jax + flax only)."""
