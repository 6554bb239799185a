"""`fusion-sweep bench`: measured training/eval speed against the machine's peak, the Keras peer, and overheads."""
from __future__ import annotations

from sweep.bench.flags import fast_cpu_flags

# the sections of a bench run, in order (`--skip` names them; checked before the runner loads JAX)
SECTIONS = ("steps", "conv_layers", "compile", "pipeline", "shap", "ray", "seeds", "checkpoints", "flops",
            "autotune")

__all__ = ["SECTIONS", "fast_cpu_flags"]
