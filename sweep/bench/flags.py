"""Process-level XLA settings that make CPU training faster (measured; see results/bench/README notes)."""
from __future__ import annotations

import os

# Flags that measurably helped the ResNet50V2 train step on the 2-core CPU. None did (jax 0.10.2, one loaded run
# each, ResNet50V2 64 px batch 32, seconds per step vs ~4.3-7 s without flags): --xla_cpu_use_onednn=true (no gain),
# --xla_cpu_experimental_onednn_custom_call=true (within noise), --xla_cpu_use_xnnpack=true (slower). The win is in
# the model code instead: per-layer conv forms in models/conv_kernels.py (im2col matmuls on small maps). The one
# flag that pays, a lower LLVM level that cuts compile time 30-45% at equal step speed, is applied to every CPU process
# by default (sweep.runtime.CPU_XLA_FLAGS), so the bench measures what a sweep runs.
FAST_CPU_FLAGS: tuple[str, ...] = ()


def fast_cpu_flags() -> str:
    """XLA_FLAGS value for CPU training: the measured-faster flags appended to any the user already set."""
    existing = os.environ.get("XLA_FLAGS", "").split()
    names = {flag.split("=")[0] for flag in existing}
    extra = [flag for flag in FAST_CPU_FLAGS if flag.split("=")[0] not in names]
    return " ".join(existing + extra)
