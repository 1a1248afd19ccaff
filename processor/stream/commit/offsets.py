"""Input offsets committed beside the work: at once, then at most every `every_s` while more
come.

A checkpoint's last step (commit/checkpoint.py) hands its input offsets over here instead of
awaiting the commit itself. A commit is a round trip to the broker; awaited in every
checkpoint it held the next one up, so at a steady rate, whose checkpoints hold a few
messages each, the work waited for the broker more than it ran, and every checkpoint cost a
request. One commit in flight covers every checkpoint that ended while it ran, and the next
follows `every_s` later at the soonest (TOUCHPOINT_COMMIT_INTERVAL_S).

What is not committed yet is read again after a crash and handled again (the journey drops
the events it has seen), as with any checkpoint that did not finish; before partitions move
and when the worker stops, `flush()` commits what is pending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

#: Commits these offsets (topic-partition -> the next offset to read).
Commit = Callable[[dict[Any, int]], Awaitable[None]]


class Committer:
    """The offsets acknowledged by checkpoints and not committed yet, and their commit."""

    def __init__(
        self,
        name: str,
        commit: Commit,
        every_s: float,
        spawn: Callable[[Awaitable[None]], asyncio.Future[Any]] = asyncio.ensure_future,
    ) -> None:
        self.name = name
        self._commit = commit
        self._every_s = every_s
        self._spawn = spawn
        self._pending: dict[Any, int] = {}
        self._running: asyncio.Future[Any] | None = None
        #: Held while a commit is under way: `flush` waits for it rather than racing it.
        self._lock = asyncio.Lock()

    def add(self, offsets: dict[Any, int]) -> None:
        """A checkpoint completed: commit past these offsets soon."""
        self._pending.update(offsets)
        if self._running is None or self._running.done():
            self._running = self._spawn(self._committing())

    async def flush(self) -> None:
        """Commit what is pending now (before partitions move, at a stop)."""
        async with self._lock:
            await self._commit_pending()

    async def _committing(self) -> None:
        while self._pending:
            async with self._lock:
                await self._commit_pending()
            await asyncio.sleep(self._every_s)

    async def _commit_pending(self) -> None:
        offsets, self._pending = self._pending, {}
        if not offsets:
            return
        try:
            await self._commit(offsets)
        except Exception:  # the next commit covers these (a later offset of each partition)
            log.warning("%s: committing offsets failed", self.name, exc_info=True)
