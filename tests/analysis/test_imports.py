"""The analysis reads tables: importing it loads no JAX, flax or Ray (it runs where those are not installed)."""
from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["sweep.analysis", "sweep.analysis.report", "sweep.analysis.plots",
                                    "sweep.analysis.answer", "sweep.analysis.tables", "sweep.commands.analyze", "models",
                                    "sweep.analysis.effects_report", "sweep.analysis.simulate_star"])
def test_importing_loads_no_jax_flax_or_ray(module):
    code = (f"import sys, {module}; "
            "print(sorted(m for m in ('jax', 'flax', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing {module} loaded {out.strip()}"
