"""Units: an agent's messages from its Faust stream, taken into one checkpoint at a time.

Faust delivers an agent's records one at a time; a unit gathers them into one `Checkpoint`
(stream/commit/checkpoint.py) and commits it when `max_messages` are in it, when no further record
waits in the agent's buffer, or at the latest `FLUSH_AFTER_S` after its first. The handler gets
the unit's checkpoint with each record: everything it makes goes there, and its table's
changes (a `Coalesced`, the checkpoint's store) reach the changelog and the local store when
the checkpoint commits. The last step acknowledges the records to Faust and has their offsets
committed by a commit beside the agent: at once, then at most every `commit_every_s` while
more come (TOUCHPOINT_COMMIT_INTERVAL_S), each covering every checkpoint that ended before it;
not on Faust's commit timer.

A commit that Kafka refused (`CheckpointFailed`) stops the worker without committing the input:
the restarted worker reads the changelog's tail into the store and handles the input again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from processor.stream.commit.checkpoint import (
    EXIT_FAILED,
    Checkpoint,
    CheckpointFailed,
    Layout,
    Store,
)
from processor.stream.extensions import internals

log = logging.getLogger(__name__)

#: A unit still open this long after its first record is committed by a timer (a record taken
#: while a rebalance cleared the agent's buffer would otherwise wait for the next one).
FLUSH_AFTER_S = 0.05

#: An agent's handler: one record, into the unit's checkpoint.
Handler = Callable[[Checkpoint, Any], None]


class Unit:
    """One agent's records in hand and the checkpoint they go to."""

    def __init__(
        self,
        name: str,
        app: Any,
        layout: Layout,
        stores: Sequence[Store],
        max_messages: int,
        commit_every_s: float = 1.0,
    ) -> None:
        self.name = name
        self._commit_every_s = commit_every_s
        self._app = app
        self._layout = layout
        self._stores = stores
        self._max = max_messages
        self._stream: Any = None
        self._cp: Checkpoint | None = None
        self._taken: list[Any] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._later: asyncio.Future[None] | None = None
        #: Partitions with offsets acknowledged and not yet committed, and the commit running.
        self._uncommitted: set[Any] = set()
        self._committer: asyncio.Future[Any] | None = None

    async def run(self, stream: Any, handle: Handler) -> None:
        """Hand each of the stream's records to `handle`, a checkpoint at a time (the agent's
        body: it returns when the stream ends)."""
        self._stream = stream
        stream.enable_acks = False  # acknowledged when the checkpoint commits
        queue = stream.channel.queue
        async for event in stream.events():
            async with self._lock:
                cp = self._cp
                if cp is None:
                    cp = self._cp = self._checkpoint()
                self._taken.append(event)
                handle(cp, event)
                message = event.message
                cp.consumed(message.tp, message.offset)
            if len(self._taken) >= self._max or queue.empty():
                await self.flush()
            elif self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(FLUSH_AFTER_S, self._flush_later)

    def _checkpoint(self) -> Checkpoint:
        return Checkpoint(
            internals.aiokafka_producer(self._app), self._layout, self._commit, self._stores
        )

    def _flush_later(self) -> None:
        self._timer = None
        self._later = asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
        """Commit the checkpoint in hand, if any (stream/commit/checkpoint.py's steps)."""
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            cp, self._cp = self._cp, None
            if cp is None:
                return
            try:
                await cp.commit()
            except CheckpointFailed:
                # Committing the input now would lose this output for good. Stop at once, as
                # a crash would: the next start reads the changelogs' tails and replays.
                log.critical(
                    "%s: Kafka refused a record made for this worker's input; stopping "
                    "without committing it (the restarted worker will handle it again)",
                    self.name,
                    exc_info=True,
                )
                logging.shutdown()
                os._exit(EXIT_FAILED)

    async def _commit(self, offsets: dict[Any, int]) -> None:
        """The checkpoint's last step: acknowledge the records to Faust and have their offsets
        committed (`_committing`)."""
        taken, self._taken = self._taken, []
        for event in taken:
            await self._stream.ack(event)
        self._uncommitted.update(offsets)
        if self._committer is None or self._committer.done():
            self._committer = self._app.add_future(self._committing())

    async def _committing(self) -> None:
        """Commit the acknowledged offsets, again as long as more came meanwhile.

        Beside the agent, not in its way: a commit is a round trip to the broker (through
        Faust's consumer thread), and awaited in every checkpoint it held up the next one, so
        at a steady rate, whose checkpoints hold a record or two, the agent fell behind. One
        commit in flight per agent covers every checkpoint that ended while it ran, and the
        next follows `commit_every_s` later at the soonest: each costs CPU in Faust's consumer
        thread, and commits back to back took a share of it that held the agents up."""
        while self._uncommitted:
            tps, self._uncommitted = self._uncommitted, set()
            try:
                await self._app.consumer.commit(tps)
            except Exception:  # the next checkpoint's commit (or Faust's own) covers these
                log.warning("%s: committing offsets failed", self.name, exc_info=True)
            await asyncio.sleep(self._commit_every_s)
