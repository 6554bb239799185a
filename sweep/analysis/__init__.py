"""The answer from a sweep's tables: per-configuration tables, Pareto front, scaling fits, plots, report. No JAX."""
