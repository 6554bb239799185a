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


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512vl avx512_bf16

processor\t: 1
vendor_id\t: AuthenticAMD
"""


def test_cpu_facts_tell_two_cpus_of_one_name_apart():
    from sweep.runtime import cpu_facts

    facts = cpu_facts(CPUINFO)
    assert (facts["cpu_vendor"], facts["cpu_family"], facts["cpu_model_number"], facts["cpu_stepping"],
            facts["cpu_model"]) == ("AuthenticAMD", "25", "17", "1", "AMD EPYC")
    assert facts["isa_flags"] == ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"]
    assert facts["avx512"] is True and facts["usable_cores"] >= 1
    older = cpu_facts(CPUINFO.replace("model\t\t: 17", "model\t\t: 1").replace(" avx512f avx512bw avx512vl avx512_bf16", ""))
    assert older["avx512"] is False and older["cpu_model_number"] == "1"
