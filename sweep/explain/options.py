"""The explanation options a user gives (masker, class mode), checked without loading SHAP or JAX: a command refuses
a bad one at once."""
from __future__ import annotations

import re

import numpy as np

from sweep import UsageError

MASKER_FORMS = ("blur(k,k)", "inpaint_telea", "inpaint_ns")
CLASS_MODES = ("true", "pred")
_BLUR = re.compile(r"^blur\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def check_masker(masker):
    """Return the masker shap expects, or raise naming the allowed forms. (From Python, an array of the image's
    shape is also accepted: hidden pixels take its values, e.g. the mean image of healthy training cases.)"""
    if isinstance(masker, np.ndarray):
        return masker.astype(np.float32)
    text = str(masker).strip()
    match = _BLUR.match(text)
    if match and int(match.group(1)) > 0 and int(match.group(2)) > 0:
        return f"blur({int(match.group(1))},{int(match.group(2))})"
    if text in ("inpaint_telea", "inpaint_ns"):
        return text
    raise UsageError(f"unknown masker {masker!r}; allowed forms: {', '.join(MASKER_FORMS)} (k a positive int)")


def check_class_mode(class_mode: str) -> str:
    if class_mode not in CLASS_MODES:
        raise UsageError(f"unknown class mode {class_mode!r}; choose one of {', '.join(CLASS_MODES)}")
    return class_mode
