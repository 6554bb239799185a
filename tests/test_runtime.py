"""sweep.runtime's process set-up: the CPU compile flags are added once, never over the user's own, never on GPUs."""
from __future__ import annotations

from sweep import runtime


def test_cpu_compile_flags_are_added_to_what_the_user_set(monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_thunk_runtime=true")
    flags = runtime.use_cpu_compile_flags()
    assert flags.split() == ["--xla_cpu_use_thunk_runtime=true", *runtime.CPU_XLA_FLAGS]
    assert runtime.use_cpu_compile_flags() == flags  # a second call adds nothing


def test_a_level_the_user_chose_is_kept(monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=3")
    assert runtime.use_cpu_compile_flags() == "--xla_backend_optimization_level=3"


def test_nothing_is_added_where_jax_computes_on_an_accelerator(monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert runtime.use_cpu_compile_flags() == "" and runtime.accelerator_visible()
