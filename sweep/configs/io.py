"""TrainConfig <-> plain JSON dicts, so a run folder records its config and can be rebuilt or compared later."""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

from sweep.configs.schema import TrainConfig

# Fields that do not change what a run computes; ignored when deciding whether an out dir holds "the same" run.
IGNORED_FOR_RESUME = (("data", "cache_dir"),)


def config_to_dict(config) -> dict:
    """A JSON-safe dict (tuples become lists) of a frozen config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _build(cls, value: Any):
    if value is None:
        return None
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{name: _build(hints[name], item) for name, item in value.items()})
    origin = typing.get_origin(cls)
    args = typing.get_args(cls)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in args:
            if arg is type(None):
                continue
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return _build(arg, value)
            if typing.get_origin(arg) is tuple and isinstance(value, list):
                return _build(arg, value)
        return value
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    return value


def config_from_dict(data: dict) -> TrainConfig:
    """Inverse of config_to_dict for TrainConfig (nested FusionSpec, DataSpec, PipelineSpec, OptimConfig...)."""
    return _build(TrainConfig, data)


def comparable(data: dict) -> dict:
    data = json.loads(json.dumps(data))
    for path in IGNORED_FOR_RESUME:
        node = data
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    return data


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Human-readable 'field: old -> new' lines between two config dicts (ignoring IGNORED_FOR_RESUME)."""
    old, new = (comparable(old), comparable(new)) if not prefix else (old, new)
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return lines
