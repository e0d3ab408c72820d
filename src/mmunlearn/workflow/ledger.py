"""The deletion ledger: an append-only record of every request processed against a checkpoint.

``<run>/ledger.jsonl`` in the *parent* run folder holds one JSON object per processed request: time,
request hash and counts, method and config, parent and child checkpoint weight hashes, the child folder
and its metrics. Lines are appended with a single ``O_APPEND`` write + fsync
(:func:`mmunlearn.io.append_line_atomic`), and only *after* the child checkpoint is completely written,
so a crash at any point leaves the parent checkpoint and every earlier ledger line intact, and never
records a child that does not exist. Processing the same request (same hash) on the same parent twice
is detected from the ledger and refused unless forced.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mmunlearn.errors import InputError
from mmunlearn.io import append_line_atomic

LEDGER = "ledger.jsonl"
FORMAT = "mmunlearn.ledger_entry"


def ledger_path(run_dir: Path) -> Path:
    return Path(run_dir) / LEDGER


def read_ledger(run_dir: Path, strict: bool = True) -> list[dict[str, Any]]:
    """All entries of a run's ledger (empty if it has none). A malformed line is an error when ``strict``."""
    path = ledger_path(run_dir)
    if not path.is_file():
        return []
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if strict:
                raise InputError(f"{path}:{lineno}: corrupt ledger line: {exc}") from None
            continue
        entries.append(obj)
    return entries


def find_entry(run_dir: Path, request_hash: str, parent_hash: str) -> dict[str, Any] | None:
    """The earlier entry that processed this request on this parent, if any."""
    for entry in read_ledger(run_dir):
        if entry.get("request", {}).get("hash") == request_hash and entry.get("parent", {}).get("hash") == parent_hash:
            return entry
    return None


def make_entry(*, request: Any, counts: dict[str, int], method: str, config: dict[str, Any], seed: int,
               parent_path: Path, parent_hash: str, child_path: Path, child_hash: str, seconds: float,
               metrics: dict[str, Any], forced: bool = False) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "request": {"hash": request.hash, "regime": request.regime, "sampling": dict(request.sampling),
                    "counts": counts},
        "method": method,
        "config": config,
        "seed": seed,
        "parent": {"path": str(parent_path), "hash": parent_hash},
        "child": {"path": str(child_path), "hash": child_hash},
        "seconds": seconds,
        "metrics": metrics,
        "forced": forced,
    }


def append_entry(run_dir: Path, entry: dict[str, Any]) -> None:
    append_line_atomic(ledger_path(run_dir), json.dumps(entry, sort_keys=True, default=_default))


def _default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


__all__ = ["LEDGER", "ledger_path", "read_ledger", "find_entry", "make_entry", "append_entry"]
