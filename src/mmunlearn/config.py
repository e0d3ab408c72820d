"""Typed, self-documenting configuration with one precedence rule: CLI flags > config file > defaults.

Every config is a frozen dataclass whose fields carry their default, type and a ``help`` string in the
field metadata; ``mmunlearn ... --help`` and ``describe_config`` print them. A config file is TOML or
JSON with one table per section (``[train]``, ``[model]``, ...). Unknown keys are an error, never
silently ignored, and every value is type-checked against the field.
"""

from __future__ import annotations

import json
import math
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from mmunlearn.errors import InputError

C = TypeVar("C")

#: config fields that say where a training runs, not what it trains: a saved model (a grid's original,
#: the user attack's shadow) is reused across them
WHERE_IT_RUNS = frozenset({"device", "threads", "graph_cache_dir"})


def option(default: Any, help: str, *, ge: float | None = None, gt: float | None = None,  # noqa: A002
           le: float | None = None, lt: float | None = None, choices: tuple[Any, ...] | None = None,
           check: Callable[[Any], str | None] | None = None, acts_in: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with its documentation and its valid range attached.

    ``ge``/``gt``/``le``/``lt`` bound a number (and every number of a tuple), ``choices`` lists the
    allowed values, ``check(value)`` returns an error text or ``None``. :func:`build` enforces them on
    every layer (config file, ``--set``, flags), so a bound is declared once, beside the field, and no
    command needs its own check. Floats must also be finite (``nan``/``inf`` are never a setting).
    ``acts_in`` names the conditions under which alone the setting changes anything (for an unlearning
    method: counts of the applied request that must be non-zero, e.g. ``deleted_items``), so that a tool
    comparing two runs' settings (the benchmark overview) can ignore it where none held (:func:`acts_in`).
    """
    meta: dict[str, Any] = {"help": help}
    if acts_in is not None:
        meta["acts_in"] = frozenset(acts_in)
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    if bounds:
        meta["bounds"] = bounds
    if choices is not None:
        meta["choices"] = tuple(choices)
    if check is not None:
        meta["check"] = check
    return field(default=default, metadata=meta)


_OPS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "ge": (lambda v, b: v >= b, ">="), "gt": (lambda v, b: v > b, ">"),
    "le": (lambda v, b: v <= b, "<="), "lt": (lambda v, b: v < b, "<"),
}


def _check_value(f: Field, cls: type, value: Any, where: str) -> None:
    """Enforce a field's ``option`` metadata (finite floats, bounds, choices, custom check)."""
    name = f"{where}: {cls.__name__}.{f.name}"
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if isinstance(v, float) and not math.isfinite(v):
            raise InputError(f"{name} must be a finite number, got {v!r}")
        if isinstance(v, int | float) and not isinstance(v, bool):
            for op, bound in f.metadata.get("bounds", {}).items():
                ok, sym = _OPS[op]
                if not ok(v, bound):
                    raise InputError(f"{name} must be {sym} {bound}, got {v!r}")
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise InputError(f"{name} must be one of {list(choices)}, got {value!r}")
    check = f.metadata.get("check")
    problem = check(value) if check is not None else None
    if problem:
        raise InputError(f"{name}: {problem}")


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
    shown = getattr(typ, "__name__", None) if origin is None else None
    raise InputError(f"{where}: {cls.__name__}.{name} must be {shown or typ}, got {value!r}")


def build(cls: type[C], *layers: tuple[str, dict[str, Any]]) -> C:
    """Defaults of ``cls`` overridden by each ``(where, mapping)`` layer in turn (later wins).

    ``None`` values in a layer mean "not given" (an unset CLI flag) and do not override.
    """
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    if not all(isinstance(mapping, dict) for _, mapping in layers):
        bad = next(where for where, mapping in layers if not isinstance(mapping, dict))
        raise InputError(f"{bad}: expected a table of {cls.__name__} settings")
    for where, mapping in layers:
        for key, value in mapping.items():
            if value is None:
                continue
            if key not in known:
                raise InputError(f"{where}: unknown {cls.__name__} key {key!r}; known: {sorted(known)}")
            values[key] = _coerce(cls, key, value, where)
            _check_value(known[key], cls, values[key], where)
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
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); a config file is TOML or JSON") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read config: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a config file must be a table of sections, got {type(data).__name__}")
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
        bounds = " ".join(f"{_OPS[op][1]} {b}" for op, b in f.metadata.get("bounds", {}).items())
        help_ = f.metadata.get("help", "") + (f" [{bounds}]" if bounds else "")
        if "acts_in" in f.metadata:
            help_ += f" (acts only where: {' or '.join(sorted(f.metadata['acts_in']))})"
        rows.append((f.name, getattr(hints[f.name], "__name__", str(hints[f.name])), repr(default), help_))
    return rows


def acts_in(cls: type) -> dict[str, frozenset[str]]:
    """The fields of ``cls`` declared (``option(acts_in=...)``) to act under some conditions only, and which."""
    return {f.name: f.metadata["acts_in"] for f in fields(cls) if "acts_in" in f.metadata}


def to_dict(cfg: Any) -> dict[str, Any]:
    return asdict(cfg)


__all__ = ["option", "build", "load_config_file", "describe_config", "acts_in", "to_dict", "replace", "dataclass"]
