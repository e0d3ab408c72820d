"""The deletion ledger: an append-only, hash-chained record of every request processed against a checkpoint.

``<run>/ledger.jsonl`` in the *parent* run folder holds one JSON object per processed request: time,
request hash and counts, method and config, parent and child checkpoint weight hashes, the child folder
and its metrics. Each entry also carries ``chain``: its position ``seq`` and ``prev``, the SHA-256 of the
previous line's exact bytes (:data:`GENESIS` for the first), and ``entry_hash``, the SHA-256 of its own
canonical JSON. ``ledger.head.json`` beside it records the entry count and the last line's hash, so
:func:`verify_ledger` finds an edited line (its hash), a removed, inserted or reordered line (the next
line's ``prev`` or ``seq``), and a removed last line (the head). The chain is tamper-*evident*, not
tamper-proof: whoever can rewrite the whole file and its head can forge it (there is no key).

Appends hold an exclusive ``flock`` on ``<run>/.locks/ledger.lock`` across read-last-line, write, fsync
and head update, so concurrent writers lose no entry and never fork the chain. Each line is written with
one ``O_APPEND`` write + fsync (a crash can at worst lose the line being written, which the head then
shows as one entry ahead — reported, not an error). Processing the same request (same hash) on the
same parent twice is detected from the ledger and refused unless forced; :func:`request_lock` makes
that check race-free across processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmunlearn.errors import InputError
from mmunlearn.io import append_line_atomic, atomic_write_json, dumps, file_lock

LEDGER = "ledger.jsonl"
HEAD = "ledger.head.json"
LOCKS = ".locks"
FORMAT = "mmunlearn.ledger_entry"
#: ``prev`` of the first entry
GENESIS = "0" * 64


def ledger_path(run_dir: Path) -> Path:
    return Path(run_dir) / LEDGER


def _lines(run_dir: Path) -> list[str]:
    """The ledger's lines (without newlines); ``[]`` when it has none. Unreadable → InputError."""
    path = ledger_path(run_dir)
    if not path.exists():
        return []
    if not path.is_file():
        raise InputError(f"{path}: the ledger is not a regular file (a folder?); move it aside")
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for lineno, line in enumerate(lines, start=1):
        try:
            out.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise InputError(f"{path}:{lineno}: ledger line is not UTF-8 text (edited or corrupt)") from None
    return out


def _parse(line: str, path: Path, lineno: int) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{lineno}: corrupt ledger line: {exc}") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}:{lineno}: corrupt ledger line: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_ledger(run_dir: Path, strict: bool = True) -> list[dict[str, Any]]:
    """All entries of a run's ledger (empty if it has none). A malformed line is an error when ``strict``."""
    path = ledger_path(run_dir)
    entries = []
    for lineno, line in enumerate(_lines(run_dir), start=1):
        if not line.strip():
            continue
        try:
            entries.append(_parse(line, path, lineno))
        except InputError:
            if strict:
                raise
    return entries


def _field(entry: dict[str, Any], *keys: str) -> Any:
    """``entry[k1][k2]...`` or ``None`` where a level is missing or not an object."""
    obj: Any = entry
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def find_entry(run_dir: Path, request_hash: str, parent_hash: str) -> dict[str, Any] | None:
    """The earlier entry that processed this request on this parent, if any."""
    for entry in read_ledger(run_dir):
        if _field(entry, "request", "hash") == request_hash and _field(entry, "parent", "hash") == parent_hash:
            return entry
    return None


def entries_for_child(run_dir: Path, child: Path) -> list[dict[str, Any]]:
    """Entries whose child folder is ``child`` (to record that a forced run overwrites one of them)."""
    target = str(Path(child).resolve())
    return [e for e in read_ledger(run_dir)
            if isinstance(_field(e, "child", "path"), str) and str(Path(e["child"]["path"]).resolve()) == target]


def make_entry(*, request: Any, counts: dict[str, int], method: str, config: dict[str, Any], seed: int,
               parent_path: Path, parent_hash: str, child_path: Path, child_hash: str, seconds: float,
               metrics: dict[str, Any], forced: bool = False,
               overwrote: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ledger record; ``overwrote`` names the child run a ``--force`` replaced (path and weights hash)."""
    entry = {
        "format": FORMAT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "request": {"hash": request.hash, "regime": request.regime, "sampling": dict(request.sampling),
                    "counts": counts},
        "method": method,
        "config": config,
        "seed": seed,
        "parent": {"path": str(Path(parent_path).resolve()), "hash": parent_hash},
        "child": {"path": str(Path(child_path).resolve()), "hash": child_hash},
        "seconds": seconds,
        "metrics": metrics,
        "forced": forced,
    }
    if overwrote is not None:
        entry["overwrote"] = overwrote
    return entry


def line_hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of the entry's canonical JSON without its own ``entry_hash``."""
    body = {k: v for k, v in entry.items() if k != "entry_hash"}
    return hashlib.sha256(dumps(body).encode("utf-8")).hexdigest()


def append_entry(run_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Chain ``entry`` to the last line and append it, holding the ledger lock; returns what was written."""
    run_dir = Path(run_dir)
    with file_lock(run_dir / LOCKS / "ledger.lock", what=f"the ledger of {run_dir}"):
        lines = [ln for ln in _lines(run_dir) if ln.strip()]
        chained = json.loads(dumps(entry))  # plain JSON types, so the hash survives the round trip
        chained.pop("entry_hash", None)
        chained["chain"] = {"seq": len(lines), "prev": line_hash(lines[-1]) if lines else GENESIS}
        chained["entry_hash"] = entry_hash(chained)
        line = dumps(chained)
        append_line_atomic(ledger_path(run_dir), line)
        atomic_write_json(run_dir / HEAD, {"count": len(lines) + 1, "last": line_hash(line)})
    return chained


@contextlib.contextmanager
def request_lock(run_dir: Path, request_hash: str) -> Iterator[None]:
    """Held while one process checks the ledger for, runs and records ``request_hash`` on this parent.

    Non-blocking: a second process with the same request on the same parent is refused at once, so two
    retrains of one request can never both land.
    """
    path = Path(run_dir) / LOCKS / f"request-{request_hash[:32]}.lock"
    with file_lock(path, what=f"request {request_hash[:12]} on {run_dir}", wait=False):
        yield


# --------------------------------------------------------------------------------------------------
# verification


@dataclass
class Verification:
    """What :func:`verify_ledger` found: ``problems`` make it fail, ``notes`` do not."""

    path: Path
    entries: int = 0
    verified: int = 0
    legacy: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and (self.verified > 0 or self.entries == 0)


def verify_ledger(run_dir: Path, *, parent_hash: str | None = None) -> Verification:
    """Check every line's hash, the chain of ``prev``/``seq``, the head, and (given) the parent hash.

    Each problem names the line (1-based). Entries written before the chain existed (no ``chain``
    field) are counted as legacy: verifiable neither one way nor the other, and said so; a legacy line
    *after* a chained one is a problem (chained writers never write one).
    """
    run_dir = Path(run_dir)
    path = ledger_path(run_dir)
    rep = Verification(path=path)
    lines = _lines(run_dir)
    prev_line: str | None = None
    seen_chain = False
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            rep.problems.append(f"line {lineno}: blank line (a line was emptied)")
            continue
        rep.entries += 1
        try:
            entry = _parse(line, path, lineno)
        except InputError:
            rep.problems.append(f"line {lineno}: not a JSON object (edited or corrupt)")
            prev_line = line
            continue
        chain = entry.get("chain")
        if chain is None:
            rep.legacy += 1
            if seen_chain:
                rep.problems.append(f"line {lineno}: has no chain fields after chained lines (inserted or edited)")
            prev_line = line
            continue
        seen_chain = True
        ok = True
        if not isinstance(chain, dict) or entry.get("entry_hash") != entry_hash(entry):
            rep.problems.append(f"line {lineno}: content does not match its entry_hash (the line was edited)")
            ok = False
        else:
            want_prev = line_hash(prev_line) if prev_line is not None else GENESIS
            if chain.get("prev") != want_prev:
                what = "the first line" if prev_line is None else f"line {lineno - 1}"
                rep.problems.append(f"line {lineno}: its prev hash does not match {what}: a line before it was "
                                    f"removed, inserted, reordered or edited")
                ok = False
            elif chain.get("seq") != lineno - 1:
                rep.problems.append(f"line {lineno}: sequence number {chain.get('seq')!r}, expected {lineno - 1} "
                                    f"(lines were removed or reordered)")
                ok = False
        if parent_hash is not None and _field(entry, "parent", "hash") != parent_hash:
            rep.problems.append(f"line {lineno}: parent weights hash {str(_field(entry, 'parent', 'hash'))[:12]} "
                                f"is not this run's ({parent_hash[:12]}): the entry belongs to another checkpoint")
            ok = False
        rep.verified += ok
        prev_line = line
    _check_head(run_dir, lines, rep)
    if rep.legacy:
        rep.notes.append(f"{rep.legacy} line(s) have no chain fields (written before the ledger was "
                         f"tamper-evident): they cannot be verified")
    return rep


def _check_head(run_dir: Path, lines: list[str], rep: Verification) -> None:
    head_path = Path(run_dir) / HEAD
    chained = [ln for ln in lines if ln.strip() and '"chain"' in ln]
    if not head_path.is_file():
        if chained:
            rep.problems.append(f"{HEAD} is missing: cannot tell whether lines were removed from the end")
        return
    try:
        head = json.loads(head_path.read_text(encoding="utf-8"))
        count, last = int(head["count"]), str(head["last"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        rep.problems.append(f"{HEAD} is unreadable (edited or corrupt)")
        return
    n = len([ln for ln in lines if ln.strip()])
    if n < count:
        rep.problems.append(f"line {n + 1}: missing; the head records {count} entries, the ledger holds {n} "
                            f"(lines were removed from the end)")
    elif n == count and lines and line_hash(lines[-1]) != last:
        rep.problems.append(f"line {n}: differs from the last entry the head records (the last line was "
                            f"replaced or edited)")
    elif n == count + 1:
        rep.notes.append(f"line {n}: written after the head was last updated (an interrupted append); it "
                         f"verifies by its chain")
    elif n > count + 1:
        rep.problems.append(f"line {count + 2}: the head records {count} entries, the ledger holds {n} "
                            f"(lines were appended without the ledger's writer)")


__all__ = ["LEDGER", "HEAD", "GENESIS", "ledger_path", "read_ledger", "find_entry", "entries_for_child",
           "make_entry", "append_entry", "request_lock", "verify_ledger", "Verification", "entry_hash",
           "line_hash"]
