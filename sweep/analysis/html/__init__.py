"""report.html: one self-contained interactive page per results folder, built from the contract's tables (no JAX)."""
from sweep.analysis.html.page import build_html

__all__ = ["build_html"]
