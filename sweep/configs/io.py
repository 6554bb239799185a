"""Configs <-> plain JSON dicts and `FIELD=VALUE` text, so a run records its config, is rebuilt from it, and every
field can be set from the command line (`--set train.optim.learning_rate=1e-3`).

Text is read by the field's declared type: bool (true/false/yes/no/1/0), int, float, str, a Literal's choices,
tuples as comma-separated items, and 'none' for None where a field allows it.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

from sweep import UsageError
from sweep.configs.schema import TrainConfig

# Fields that do not change what a run computes; ignored when deciding whether an out dir holds "the same" run.
IGNORED_FOR_RESUME = (("data", "cache_dir"),)
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")
# Fields that older fusion-sweep versions wrote into manifests and config.json: (class, field) -> (the value that
# means what the current fields do by default, what to set instead of any other value).
RETIRED_FIELDS = {("EarlyStopping", "restore_best"): (True, "train.weights=last")}


def config_to_dict(config) -> dict:
    """A JSON-safe dict (tuples become lists) of a frozen config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls, value: Any):
    """The dataclass `cls` (nested ones included) from config_to_dict's output; UsageError on unknown fields."""
    if value is None:
        return None
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        value = _without_retired(cls, value)
        unknown = set(value) - known
        if unknown:
            raise UsageError(f"{cls.__name__} has no field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{name: from_dict(hints[name], item) for name, item in value.items()})
    if typing.get_origin(cls) in (typing.Union, types.UnionType):
        for arg in typing.get_args(cls):
            if (dataclasses.is_dataclass(arg) and isinstance(value, dict)) or \
                    (typing.get_origin(arg) is tuple and isinstance(value, list)):
                return from_dict(arg, value)
        return value
    if typing.get_origin(cls) is tuple and isinstance(value, list):
        item = typing.get_args(cls)[0] if typing.get_args(cls) else None
        return tuple(from_dict(item, v) if dataclasses.is_dataclass(item) else v for v in value)
    if typing.get_origin(cls) is dict and isinstance(value, dict):
        item = typing.get_args(cls)[1]
        return {str(k): from_dict(item, v) for k, v in value.items()}
    return value


def _without_retired(cls, value: dict) -> dict:
    value = dict(value)
    for (owner, field), (default, instead) in RETIRED_FIELDS.items():
        if owner == cls.__name__ and field in value:
            old = value.pop(field)
            if old != default:
                raise UsageError(f"{owner}.{field}={old!r} was written by an older fusion-sweep and is retired; "
                                 f"set {instead} instead")
    return value


def config_from_dict(data: dict) -> TrainConfig:
    """Inverse of config_to_dict for TrainConfig (nested FusionSpec, DataSpec, PipelineSpec, OptimConfig...)."""
    return from_dict(TrainConfig, data)


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


# ---------------------------------------------------------------- FIELD=VALUE

def apply_settings(config, settings: list[str]):
    """`config` with each 'dotted.field=value' of `settings` applied in order (later ones win)."""
    for item in settings:
        field, eq, text = item.partition("=")
        if not eq or not field.strip():
            raise UsageError(f"--set expects FIELD=VALUE, got {item!r}")
        config = set_field(config, field.strip(), text.strip())
    return config


def set_field(config, dotted: str, text: str, said: str | None = None):
    """A copy of the frozen dataclass `config` with the field at `dotted` (a.b.c) read from `text` by its type.
    `said`: how the user wrote it, for the error message (default '--set dotted=text')."""
    return _set(config, dotted.split("."), text, dotted, said or f"--set {dotted}={text}")


def _set(obj, path: list[str], text: str, dotted: str, said: str):
    head, rest = path[0], path[1:]
    names = [f.name for f in dataclasses.fields(obj)]
    if head not in names:
        raise UsageError(f"--set {dotted}: {type(obj).__name__} has no field {head!r}; fields: {', '.join(names)}")
    hint = typing.get_type_hints(type(obj))[head]
    current = getattr(obj, head)
    if rest:
        nested = _dataclass_in(hint)
        if nested is None:
            raise UsageError(f"--set {dotted}: {head} is a value, not a nested config")
        nested_value = _set(current if current is not None else nested(), rest, text, dotted, said)
        return dataclasses.replace(obj, **{head: nested_value})
    try:
        value = parse_value(hint, text)
    except ValueError as err:
        raise UsageError(f"{said}: {err}") from None
    return dataclasses.replace(obj, **{head: value})


def parse_value(hint, text: str):
    """`text` read as a value of type `hint`; ValueError saying what was expected."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if type(None) in options and text.lower() in ("none", "null", ""):
        return None
    kinds = [o for o in options if o is not type(None)]
    kind = kinds[0] if len(kinds) == 1 else next((k for k in kinds if typing.get_origin(k) is tuple), kinds[0])
    if typing.get_origin(kind) is dict:
        raise ValueError("a mapping, which text cannot give (`--init BACKBONE=SOURCE` sets starting weights, "
                         "`fusion-sweep run --external NAME=DIR` adds external folders)")
    if typing.get_origin(kind) is tuple and dataclasses.is_dataclass(typing.get_args(kind)[0]):
        raise ValueError(f"a list of {typing.get_args(kind)[0].__name__} configs, which text cannot give; "
                         "set it in a preset, or 'none'" if type(None) in options else "set it in a preset")
    if dataclasses.is_dataclass(kind):
        raise ValueError(f"a nested config: set one of its fields ({', '.join(f.name for f in dataclasses.fields(kind))})"
                         + (" or 'none'" if type(None) in options else ""))
    return _parse_one(kind, text)


def _parse_one(kind, text: str):
    if typing.get_origin(kind) is typing.Literal:
        choices = typing.get_args(kind)
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(map(str, choices))}")
        return text
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        return tuple(parse_value(item, part.strip()) for part in text.split(",") if part.strip())
    if kind is bool:
        if text.lower() not in _TRUE + _FALSE:
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() in _TRUE
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    return text


def _dataclass_in(hint):
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return next((o for o in options if dataclasses.is_dataclass(o)), None)
