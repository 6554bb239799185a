"""Experiments: train one model, sweep many with Ray Tune, analyse, explain and benchmark them.

Packages, each depending only on those before it: configs -> engine -> tune; analysis and explain read what
tune writes; bench measures the engine; commands (one per CLI subcommand) sit on top, and cli.py dispatches.
"""


class UsageError(ValueError):
    """The user asked for something that cannot work (a bad flag, path, field or value), found before any work.
    `fusion-sweep` prints it as one line and exits 2. A ValueError, so library callers can catch either."""
