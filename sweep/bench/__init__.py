"""`fusion-sweep bench`: measured training/eval speed against the machine's peak, the Keras peer, and overheads."""
from __future__ import annotations

from sweep.bench.flags import fast_cpu_flags

__all__ = ["fast_cpu_flags"]
