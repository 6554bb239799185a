"""What the commands share: process flags, and the one config path (a base config, shorthand flags, `--set`).

Every command that trains builds its config the same way: a preset's dataclasses (or, for `run`, a manifest's),
then each shorthand flag the user gave (`--lr 1e-3` is `--set optim.learning_rate=1e-3`), then every
`--set FIELD=VALUE` in order. A shorthand is a row of a table: (flag, field path, help); its text is read by
the field's type exactly as `--set` reads it.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import types
import typing
from pathlib import Path
from typing import Iterator

from sweep import UsageError
from sweep.configs.io import apply_settings, set_field
from sweep.runtime import enable_compilation_cache, pin_cores

RUNS_ROOT = Path("runs")  # git-ignored: where user runs land unless --out names another folder


@dataclasses.dataclass(frozen=True)
class Shorthand:
    """A flag that stands for `--set FIELD=VALUE`. `value` fixes the text for a flag without an argument;
    `also` are settings ('field=value') it implies, applied first (so a flag given later still wins)."""

    flag: str
    field: str
    help: str = ""
    value: str | None = None  # a store_true flag sets this text
    also: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def settings(self, text: str) -> list[str]:
        return [*self.also, f"{self.field}={text}"]


def under(prefix: str, shorthands: tuple[Shorthand, ...], *flags: str) -> tuple[Shorthand, ...]:
    """The shorthands named by `flags`, for a config that holds theirs at `prefix` (e.g. 'train.' in a sweep)."""
    chosen = [s for s in shorthands if s.flag in flags]
    missing = set(flags) - {s.flag for s in chosen}
    if missing:
        raise KeyError(f"no shorthand {sorted(missing)}")
    return tuple(dataclasses.replace(s, field=prefix + s.field, also=tuple(prefix + a for a in s.also))
                 for s in chosen)


def by_field(*dotted: str) -> tuple[Shorthand, ...]:
    """A shorthand per field, named after the field's last part: fusion.cnn_cut -> --cnn-cut."""
    return tuple(Shorthand("--" + field.rsplit(".", 1)[-1].replace("_", "-"), field) for field in dotted)


def add_shorthands(parser, shorthands: tuple[Shorthand, ...], root, show_defaults: bool = True) -> None:
    """One argparse option per shorthand (default None: 'not given'). Its help names the field it sets, the
    choices its type allows and (show_defaults) the value in `root`, the config the command starts from."""
    for item in shorthands:
        if item.value is not None:
            parser.add_argument(item.flag, dest=item.dest, action="store_const", const=item.value, default=None,
                                help=f"{item.help}{'; ' if item.help else ''}--set {item.field}={item.value}")
            continue
        words = [item.help] if item.help else []
        choices = _choices(type(root), item.field)
        words += [f"one of {', '.join(choices)}"] if choices else []
        words += [f"--set {item.field}" + (f" (default {_text(_field_value(root, item.field))})" if show_defaults
                                           else "")]
        parser.add_argument(item.flag, dest=item.dest, default=None, metavar=item.dest.upper(), help="; ".join(words))


def _choices(cls, dotted: str) -> tuple[str, ...]:
    """The Literal choices of the field at `dotted` below the dataclass `cls` (none for other types)."""
    hint = cls
    for name in dotted.split("."):
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        hint = typing.get_type_hints(next(o for o in options if dataclasses.is_dataclass(o)))[name]
    return tuple(map(str, typing.get_args(hint))) if typing.get_origin(hint) is typing.Literal else ()


def add_init_argument(parser, field: str) -> None:
    parser.add_argument("--init", action="append", default=[], metavar="BACKBONE=SOURCE",
                        help="where a backbone's weights start (repeatable; sets " + field + "): BACKBONE is cnn or "
                        "resnet50v2, SOURCE scratch (default), imagenet (resnet50v2; `fusion-sweep weights fetch "
                        "resnet50v2` or `weights add` first) or a Keras file (.h5, .weights.h5, .keras); a fusion "
                        "takes each branch's layers up to its cut")


def add_set_argument(parser, root: str) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help=f"override any field of the {root} by dotted path (repeatable; after the shorthand flags)")


def build_config(base, args, shorthands: tuple[Shorthand, ...], *, strip_prefix: str | None = None,
                 special: dict[str, object] | None = None):
    """`base` with the shorthands and then the --set items of `args` applied. `special` maps a shorthand's dest
    to a function of its text giving the settings it stands for instead (e.g. --patience 0 turns early stopping
    off); `strip_prefix` (e.g. 'train.') is accepted in front of a --set field, so run's and train's paths both work."""
    config = base
    for item in shorthands:
        text = getattr(args, item.dest)
        if text is None:
            continue
        for setting in special[item.dest](text) if special and item.dest in special else item.settings(text):
            field, _, value = setting.partition("=")
            config = set_field(config, field, value, said=item.flag if item.value is not None else f"{item.flag} {text}")
    settings = list(getattr(args, "set", []) or [])
    if strip_prefix:
        settings = [s[len(strip_prefix):] if s.startswith(strip_prefix) else s for s in settings]
    return apply_settings(config, settings)


def _field_value(config, dotted: str):
    for name in dotted.split("."):
        config = getattr(config, name, None)
    return config


def _text(value) -> str:
    if isinstance(value, tuple):
        return ",".join("none" if v is None else str(v) for v in value)
    return "none" if value is None else str(value)


# ---------------------------------------------------------------- the process

def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="pin this process to N cores before JAX starts (default: all it may use)")
    parser.add_argument("--no-compile-cache", action="store_true", help="turn JAX's persistent compilation cache off")


def setup_runtime(args) -> None:
    """Pin cores and turn on the compilation cache; call before the first JAX operation."""
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        pin_cores(args.threads)
    if not args.no_compile_cache:
        enable_compilation_cache()


def check_data(spec) -> None:
    """A DataSpec's cheap checks (its values; for radiography, that --data-dir is a folder), before any work."""
    from data.builder import validate

    with usage_errors():
        validate(spec)
    if spec.source == "radiography":
        if not spec.data_dir:
            raise UsageError("radiography data needs --data-dir (the dataset folder)")
        path = Path(spec.data_dir).expanduser()
        if not path.is_dir():
            raise UsageError(f"--data-dir {path} is not a folder")


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """Inside: a ValueError or missing file/folder (e.g. from data/, which knows nothing of UsageError) is the
    user's input, reported as a UsageError. Wrap only the checks and loading done before any real work."""
    try:
        yield
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        if isinstance(err, UsageError):
            raise
        raise UsageError(str(err)) from err
