"""Units: an agent's messages from its Faust stream, taken into one checkpoint at a time.

Faust delivers an agent's records one at a time; a unit gathers them into one `Checkpoint`
(stream/commit/checkpoint.py) and commits it when `max_messages` are in it, when no further record
waits in the agent's buffer, or at the latest `FLUSH_AFTER_S` after its first. The handler gets
the unit's checkpoint with each record: everything it makes goes there, and its table's
changes (a `Coalesced`, the checkpoint's store) reach the changelog and the local store when
the checkpoint commits. The last step acknowledges the records to Faust and has their offsets
committed beside the agent (stream/commit/offsets.py), not on Faust's commit timer.

A commit that Kafka refused (`CheckpointFailed`) stops the worker without committing the input:
the restarted worker reads the changelog's tail into the store and handles the input again.

The internal topics hold a record at every offset (this worker's producers write them, without
transactions, and nothing compacts them), so a record whose offset is more than one past the
previous one of its partition means the broker skipped one. Faust would commit past such a gap
(it takes it for a compacted topic's), losing the record for good. The agents' consumer reads
a skipped offset again before Faust sees the records after it (stream/extensions/consumer.py
`InOrder`); should one still come past a gap, a unit stops the worker instead, without
committing, and the restart reads from before the gap (`Positions`). Apache Kafka serves a
partition strictly in offset order; the embedded broker was seen to skip records now and then
(docs/reliability.md).
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
from processor.stream.commit.offsets import Committer
from processor.stream.extensions import internals

log = logging.getLogger(__name__)

#: A unit still open this long after its first record is committed by a timer (a record taken
#: while a rebalance cleared the agent's buffer would otherwise wait for the next one).
FLUSH_AFTER_S = 0.05

#: An agent's handler: one record, into the unit's checkpoint.
Handler = Callable[[Checkpoint, Any], None]


class Positions:
    """The offset of the last record taken per partition, to find records the broker skipped."""

    def __init__(self) -> None:
        self._last: dict[Any, int] = {}

    def skipped(self, tp: Any, offset: int) -> int | None:
        """Take the record at `offset` of `tp`: the first offset skipped before it, if any (a
        record at or before the last one, as after a seek back, skips nothing)."""
        last = self._last.get(tp)
        self._last[tp] = offset
        if last is not None and offset > last + 1:
            return last + 1
        return None

    def forget(self) -> None:
        """Partitions moved: the next record of each starts afresh."""
        self._last.clear()


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
        self.positions = Positions()
        #: Faust commits the offsets of the records acknowledged to it, per partition.
        self._committer = Committer(
            name, self._commit_acknowledged, commit_every_s, spawn=app.add_future
        )

    async def run(self, stream: Any, handle: Handler) -> None:
        """Hand each of the stream's records to `handle`, a checkpoint at a time (the agent's
        body: it returns when the stream ends)."""
        self._stream = stream
        stream.enable_acks = False  # acknowledged when the checkpoint commits
        queue = stream.channel.queue
        async for event in stream.events():
            message = event.message
            missing = self.positions.skipped(message.tp, message.offset)
            if missing is not None:
                self._stop_for_gap(message.tp, missing, message.offset)
            async with self._lock:
                cp = self._cp
                if cp is None:
                    cp = self._cp = self._checkpoint()
                self._taken.append(event)
                handle(cp, event)
                cp.consumed(message.tp, message.offset)
            if len(self._taken) >= self._max or queue.empty():
                await self.flush()
            elif self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(FLUSH_AFTER_S, self._flush_later)

    def _stop_for_gap(self, tp: Any, missing: int, offset: int) -> None:
        """The broker skipped records before `offset`: stop at once, committing nothing more,
        so that the restarted worker reads them (see the module's docstring)."""
        log.critical(
            "%s: %s jumped from offset %d to %d; the broker skipped a record, and committing "
            "past it would lose it: stopping without committing (the restarted worker reads "
            "from before it)",
            self.name, tp, missing - 1, offset,
        )  # fmt: skip
        logging.shutdown()
        os._exit(EXIT_FAILED)

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
        committed (stream/commit/offsets.py)."""
        taken, self._taken = self._taken, []
        for event in taken:
            await self._stream.ack(event)
        self._committer.add(offsets)

    async def _commit_acknowledged(self, offsets: dict[Any, int]) -> None:
        """Commit the offsets Faust holds as acknowledged for these partitions (a round trip
        through Faust's consumer thread)."""
        await self._app.consumer.commit(set(offsets))
