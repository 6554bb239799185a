"""Presets by name: each is a module of sweep.configs with get_config() -> SweepConfig."""
from __future__ import annotations

from typing import Callable

from sweep import UsageError
from sweep.configs import concat_xception_resnet, cpu_real, paper, quick
from sweep.configs.schema import SweepConfig

PRESETS: dict[str, Callable[[], SweepConfig]] = {"quick": quick.get_config, "cpu-real": cpu_real.get_config,
                                                 "paper": paper.get_config,
                                                 "concat-xception-resnet": concat_xception_resnet.get_config}


def get_preset(name: str) -> SweepConfig:
    """The named preset's SweepConfig; UsageError listing the names when unknown."""
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]()
