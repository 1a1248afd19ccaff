"""Progress of a long command on stderr: a rich progress bar on a terminal, else a plain line
every few seconds (logs and CI keep a readable record, without control characters)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO


class Done(Protocol):
    """Reports progress: `n` done, of `total` when it is known."""

    def __call__(self, n: int, total: int | None = None, /) -> None: ...


#: Without a terminal, a progress line at most this often.
PLAIN_EVERY_S = 5.0


@contextmanager
def progress(
    label: str, total: int | None = None, *, stream: TextIO | None = None, unit: str = "messages"
) -> Iterator[Done]:
    """`with progress("publishing", total) as done: done(n)` reports n of total done;
    `done(n, total)` also sets the total once it is known."""
    out = stream or sys.stderr
    if out.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
        if total is not None:
            columns += [TaskProgressColumn(), TimeRemainingColumn()]
        columns += [TimeElapsedColumn()]
        with Progress(*columns, console=Console(file=out), transient=True) as bar:
            task = bar.add_task(label, total=total)

            def advance(n: int, of: int | None = None) -> None:
                if of is not None:
                    bar.update(task, total=of)
                bar.update(task, completed=n)

            yield advance
        return
    last = time.monotonic()
    known = total

    def line(n: int, of: int | None = None) -> None:
        nonlocal last, known
        known = of if of is not None else known
        if time.monotonic() - last >= PLAIN_EVERY_S:
            last = time.monotonic()
            suffix = f" of {known:,}" if known is not None else ""
            print(f"{label}: {n:,}{suffix} {unit}", file=out, flush=True)

    yield line
