"""The results folder of a grid: ``grid.json`` binds it to one grid config (or a superset, with
``extend``); one JSON file per finished cell under ``cells/``; the machine each run ran on.

Cells are written atomically, so a reader never sees half a cell; a different grid is refused rather than
mixed into the folder.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmunlearn.bench.grid.schema import AXES, REGIME_ONLY_FIELDS, GridConfig, grid_config
from mmunlearn.errors import InputError
from mmunlearn.io import atomic_write_json

GRID_FILE = "grid.json"
GRID_FORMAT = "mmunlearn.grid"
#: what a new results folder may already hold: another grid's trained models and sampled requests, copied
#: in so that a grid with the same training settings reuses its originals and Retrains (Retrains are keyed
#: by their data and configs; a saved original is checked against the grid's configs before reuse)
SEEDABLE_ENTRIES = frozenset({"cells", "models", "requests"})
CELL_FORMAT = "mmunlearn.grid_cell"


def machine() -> str:
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load avg {os.getloadavg()[0]:.1f}"
    return (f"{platform.node() or 'host'}: {platform.machine()} {os.cpu_count()} cores "
            f"({platform.processor() or platform.system()}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s){load}")


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


def _superset_problems(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """Why ``new`` cannot extend ``old``: an axis value dropped, or a setting changed that a stored cell
    ran with (a setting of a regime the stored grid does not have acted on none of its cells)."""
    problems = []
    old_regimes = set(map(str, old.get("regimes", [])))
    for key in sorted(set(new) | set(old)):
        if key in AXES:
            missing = sorted(set(map(str, old.get(key, []))) - set(map(str, new.get(key, []))))
            if missing:
                problems.append(f"{key} drops {', '.join(missing)}")
        elif key in REGIME_ONLY_FIELDS and REGIME_ONLY_FIELDS[key] not in old_regimes:
            continue
        elif new.get(key) != old.get(key):
            problems.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    return problems


def _differences(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(new) | set(old)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key in AXES:
            added = sorted(set(map(str, b or [])) - set(map(str, a or [])))
            dropped = sorted(set(map(str, a or [])) - set(map(str, b or [])))
            out.append(f"{key}" + (f" +{','.join(added)}" if added else "") + (f" -{','.join(dropped)}" if dropped else ""))
        else:
            out.append(f"{key} {a!r} -> {b!r}")
    return out


def bind_results_dir(out: Path, cfg: GridConfig, *, extend: bool = False, device: str = "cpu",
                     threads: int = 1, rerun: tuple[str, ...] = ()) -> dict[str, Any]:
    """Create or check ``out/grid.json``; refuse a different grid unless ``extend`` and a superset.

    Each run is appended to the record, with the methods it re-ran: a reader of the folder can tell that
    those cells are newer than the references they were judged against."""
    out = Path(out)
    path = out / GRID_FILE
    new_canon, new_hash = cfg.as_record(), cfg.hash()
    run = {"started": now(), "device": device, "threads": threads, "machine": machine(), "hash": new_hash}
    if rerun:
        run["rerun"] = list(rerun)
    if path.is_file():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            old_hash, old_canon = record["hash"], record["config"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"{path}: corrupt grid record; use a new results folder") from None
        if old_hash != new_hash:
            problems = _superset_problems(new_canon, old_canon)
            if not extend:
                diff = "; ".join(_differences(new_canon, old_canon))
                raise InputError(f"{out} holds results of a different grid (hash {old_hash[:12]}, this one "
                                 f"{new_hash[:12]}: {diff}); use another --out, or --extend to add cells")
            if problems:
                raise InputError(f"--extend needs a superset of the stored grid ({out}): {'; '.join(problems)}")
            record["history"] = [*record.get("history", []),
                                 {"hash": old_hash, "config": old_canon, "replaced": now()}]
        record.update({"config": new_canon, "hash": new_hash})
        record["runs"] = [*record.get("runs", []), run]
    else:
        if out.exists() and not (out / "cells").exists():
            stray = sorted(p.name for p in out.iterdir() if p.name not in SEEDABLE_ENTRIES)
            if stray:
                raise InputError(f"{out} exists and is not a results folder (no {GRID_FILE}; holds {stray[0]!r}); "
                                 "use an empty or new folder (a copied models/ and requests/ are fine)")
        record = {"format": GRID_FORMAT, "created": now(), "config": new_canon, "hash": new_hash,
                  "history": [], "runs": [run]}
    atomic_write_json(path, record)
    return record


def read_grid(out: Path) -> dict[str, Any]:
    path = Path(out) / GRID_FILE
    if not path.is_file():
        raise InputError(f"{out}: not a results folder (no {GRID_FILE})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: corrupt grid record: {exc}") from None


def config_from_record(record: dict[str, Any]) -> GridConfig:
    names = {f.name for f in fields(GridConfig)}
    return grid_config(("grid.json", {k: v for k, v in record["config"].items() if k in names}))


def jsonable(obj: Any) -> Any:
    """Plain JSON: numpy → Python, non-finite floats → None, tuples → lists, anything else → str."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return jsonable(obj.item())
    return str(obj)


def read_cells(out: Path) -> list[dict[str, Any]]:
    """Every cell JSON under ``out/cells`` (references included), in path order."""
    cells = []
    for path in sorted((Path(out) / "cells").rglob("*.json")):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:  # atomic writes make this a foreign or edited file
            raise InputError(f"{path}: corrupt cell file: {exc}") from None
        if obj.get("format") == CELL_FORMAT:
            cells.append(obj)
    return cells


__all__ = ["GRID_FILE", "GRID_FORMAT", "CELL_FORMAT", "machine", "now", "bind_results_dir", "read_grid",
           "config_from_record", "jsonable", "read_cells"]
