"""A small wrapper over rich's progress bar so long loops show progress (and can be silenced)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress, self._task = progress, task

    def update(self, advance: int = 1, **fields: str) -> None:
        if self._progress is not None and self._task is not None:
            info = " ".join(f"{k}={v}" for k, v in fields.items())
            self._progress.update(self._task, advance=advance, info=info)

    def describe(self, desc: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=desc)


@contextmanager
def progress_bar(total: int, desc: str, enabled: bool = True) -> Iterator[_Bar]:
    """A rich progress bar with ETA on stderr; ``enabled=False`` makes every call a no-op."""
    if not enabled:
        yield _Bar(None, None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
    from rich.console import Console

    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(desc, total=total, info="")
        yield _Bar(progress, task)
