"""XLA options for inference programs (eval, predict, latency): on CPU, no YNNPACK graph fusions (measured faster).

jax 0.10's CPU backend hands fused subgraphs to YNNPACK. In an inference forward it fuses whole conv -> bias ->
ReLU -> BatchNorm -> max-pool -> conv chains, and those run slower than XLA's own convolution and fusions: the CNN's
eval step at 64 px, batch 32, 150 -> 252 images/s, the seed's fusion 118 -> 133, ResNet50V2 121 -> 120 (medians
of 7 interleaved windows, one process, both cores). YNNPACK's matmul is no better for the heads' dense layers
either (a batch of 32 through ResNet50V2's 8192 -> 2048 Dense: 31 ms with it, 16 ms without). Training steps keep
the default: without YNNPACK the seed's fusion trains 28 -> 21 images/s and ResNet50V2 ~30 -> ~20. So the option is
set per program (`jax.jit(..., compiler_options=inference_compiler_options())`), never for the whole process.
Those figures are one CPU's: the caller that measured this machine (sweep/engine/autotune.py) says with
`set_inference_ynnpack(True)` when inference programs run faster with YNNPACK left on.
"""
from __future__ import annotations

import functools
import os

YNN_FUSION_TYPE = "xla_cpu_experimental_ynn_fusion_type"
INFERENCE_CPU_OPTIONS = {YNN_FUSION_TYPE: ""}  # no kind of op goes to YNNPACK
_keep_ynnpack = False


def set_inference_ynnpack(keep: bool) -> None:
    """keep=True: inference programs compiled from now on keep JAX's default (YNNPACK fusions on)."""
    global _keep_ynnpack
    _keep_ynnpack = bool(keep)


def inference_compiler_options() -> dict[str, str]:
    """The options an inference program compiles with: {} when the caller chose YNNPACK on (set_inference_ynnpack),
    else without_ynnpack_options()."""
    return {} if _keep_ynnpack else without_ynnpack_options()


@functools.cache
def without_ynnpack_options() -> dict[str, str]:
    """INFERENCE_CPU_OPTIONS when JAX computes on CPU and this jaxlib knows the option; else {} (GPU, a jaxlib
    that renamed it, or a user who set the option in XLA_FLAGS: theirs wins)."""
    import jax
    import numpy as np

    if jax.default_backend() != "cpu" or YNN_FUSION_TYPE in os.environ.get("XLA_FLAGS", ""):
        return {}
    try:
        jax.jit(lambda x: x + 1, compiler_options=INFERENCE_CPU_OPTIONS).lower(np.float32(0)).compile()
    except Exception:  # an unknown option name or value: compile as JAX would by default
        return {}
    return dict(INFERENCE_CPU_OPTIONS)


inference_compiler_options.cache_clear = without_ynnpack_options.cache_clear  # type: ignore[attr-defined]
