"""Make `import data` find the repo's package, not this tests/data folder (bare `pytest` puts tests/ on sys.path)."""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parents[2])
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
if "data" in sys.modules and getattr(sys.modules["data"], "__file__", None) is None:  # a namespace stand-in
    for name in [m for m in sys.modules if m == "data" or m.startswith("data.")]:
        del sys.modules[name]
