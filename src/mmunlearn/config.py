"""Typed, self-documenting configuration with one precedence rule: CLI flags > config file > defaults.

Every config is a frozen dataclass whose fields carry their default, type and a ``help`` string in the
field metadata; ``mmunlearn ... --help`` and ``describe_config`` print them. A config file is TOML or
JSON with one table per section (``[train]``, ``[model]``, ...). Unknown keys are an error, never
silently ignored, and every value is type-checked against the field.
"""

from __future__ import annotations

import json
import tomllib
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from mmunlearn.errors import InputError

C = TypeVar("C")


def option(default: Any, help: str) -> Any:  # noqa: A002 - mirrors click's vocabulary
    """A dataclass field with its documentation attached."""
    return field(default=default, metadata={"help": help})


def _coerce(cls: type, name: str, value: Any, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    typ = hints[name]
    origin = typing.get_origin(typ)
    allowed = typing.get_args(typ) if origin in (typing.Union, types.UnionType) else (typ,)
    for t in allowed:
        if t is type(None) and value is None:
            return None
        if t is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is bool and isinstance(value, bool):
            return value
        if t is str and isinstance(value, str):
            return value
        if typing.get_origin(t) is tuple and isinstance(value, list | tuple):
            return tuple(value)
        if (t is dict or typing.get_origin(t) is dict) and isinstance(value, dict):
            return dict(value)
    raise InputError(f"{where}: {cls.__name__}.{name} must be {typ}, got {value!r}")


def build(cls: type[C], *layers: tuple[str, dict[str, Any]]) -> C:
    """Defaults of ``cls`` overridden by each ``(where, mapping)`` layer in turn (later wins).

    ``None`` values in a layer mean "not given" (an unset CLI flag) and do not override.
    """
    known = {f.name for f in fields(cls)}
    values: dict[str, Any] = {}
    for where, mapping in layers:
        for key, value in mapping.items():
            if value is None:
                continue
            if key not in known:
                raise InputError(f"{where}: unknown {cls.__name__} key {key!r}; known: {sorted(known)}")
            values[key] = _coerce(cls, key, value, where)
    return cls(**values)


def load_config_file(path: Path | None) -> dict[str, dict[str, Any]]:
    """Read a TOML/JSON config into ``{section: {key: value}}``; ``None`` gives an empty config."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such config file")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: cannot parse config: {exc}") from None
    for key, value in data.items():
        if not isinstance(value, dict):
            raise InputError(f"{path}: top-level key {key!r} must be a section table")
    return data


def describe_config(cls: type) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) for each field, for ``--help`` screens and docs."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else "(required)"
        rows.append((f.name, getattr(hints[f.name], "__name__", str(hints[f.name])), repr(default),
                     f.metadata.get("help", "")))
    return rows


def to_dict(cfg: Any) -> dict[str, Any]:
    return asdict(cfg)


__all__ = ["option", "build", "load_config_file", "describe_config", "to_dict", "replace", "dataclass"]
