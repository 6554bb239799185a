"""The training engine: train and evaluate ONE model (jitted steps, loop, checkpoints, metrics, run files). No Ray."""
