"""Ray Tune sweeps: the search space, one trial's process, the driver, live progress and the results tables."""
