"""Experiments: train one model, sweep many with Ray Tune, analyse, explain and benchmark them."""
