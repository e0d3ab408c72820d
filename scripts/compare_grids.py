"""Compare two results folders of the same grid cell by cell: are the quality columns identical?

Used to show that a refactor left behaviour unchanged (docs/CHANGELOG.md, 2026-12-02): run the same grid
config with the old and the new code into two folders, then

    .venv/bin/python scripts/compare_grids.py OLD_RESULTS NEW_RESULTS

Timings, dates and machine lines are ignored. The selection rule breaks near-ties by speed, so under load
two runs may *choose* differently among equally good candidates: the script therefore also checks that
every selection saw the same candidates with the same proxy gap D and valid utility V, and that every
cell whose choice agrees is identical. Exit status 1 if anything else differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

IGNORED_SUBSTRINGS = ("seconds", "speedup", "date", "machine", "wall", "setup")
IGNORED_KEYS = {"config", "fixed", "rule"}  # a config dict lists settings that may have been added/removed
PARTS = ("row", "audits", "histogram", "utility", "forget", "log", "request")


def load(root: Path) -> dict[str, dict[str, Any]]:
    return {str(p.relative_to(root)): json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((root / "cells").rglob("*.json"))}


def strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items()
                if k not in IGNORED_KEYS and not any(s in k for s in IGNORED_SUBSTRINGS)}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def candidates(cell: dict[str, Any]) -> list[tuple[str, Any, Any]] | None:
    grid = cell.get("selection", {}).get("grid")
    return None if grid is None else [(json.dumps(c["config"], sort_keys=True), c["D"], c["V"]) for c in grid]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    args = ap.parse_args()
    a, b = load(args.old), load(args.new)
    problems = [f"cells only in {args.old}: {sorted(set(a) - set(b))}"] if set(a) - set(b) else []
    problems += [f"cells only in {args.new}: {sorted(set(b) - set(a))}"] if set(b) - set(a) else []
    other_choice = 0
    for key in sorted(set(a) & set(b)):
        if candidates(a[key]) != candidates(b[key]):
            problems.append(f"{key}: the selection saw different candidates")
            continue
        if a[key].get("selection", {}).get("chosen") != b[key].get("selection", {}).get("chosen"):
            other_choice += 1  # a near-tie broken by speed: not a behaviour difference
            continue
        problems += [f"{key}: {part} differs" for part in PARTS if strip(a[key].get(part)) != strip(b[key].get(part))]
    print(f"{len(set(a) & set(b))} common cells; {other_choice} chose another near-tied candidate (by speed); "
          f"{len(problems)} difference(s)")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
