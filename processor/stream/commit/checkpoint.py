"""The checkpoint: the one commit boundary of a batch of input.

A handler never sends anything itself. It hands every record it makes for its input to the
batch's `Checkpoint` (`send`), and the input's offsets are noted there too (`consumed`). When
the batch is done, `commit()` runs the numbered steps, each only after the one before it held:

1. OUTPUTS: every record is handed to the producer (keyed records one aiokafka record batch per
   topic-partition; internal records packed in bundles, stream/commit/bundles.py) and awaited until
   Kafka acknowledged it;
2. CHANGELOG: every store's changed keys go to their changelog, awaited the same way;
3. STORE: every store writes its changes locally, with the changelog offsets they reflect,
   and what the handlers counted (`count`) is added to the metrics;
4. OFFSETS: the input offsets are committed, by the checkpoint and never by a timer.

A crash before step 4 leaves the input uncommitted: it is read again and handled again, and the
records come again with the same keys and ids (the journey drops an event it has seen). A crash
after step 2 and before step 3 leaves a changelog ahead of the local store, which its recovery
reads; the local store is never ahead of its changelog.

A record Kafka refuses at step 1 or 2 fails the checkpoint (`CheckpointFailed`): committing the
input would lose that record for good, so the worker stops without committing (`EXIT_FAILED`).

quix-streams' `checkpointing/checkpoint.py` shapes its commit the same way; Kafka Streams' task
commit does too (flush the producer, then the stores, then commit the offsets).
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from processor import topics as t
from processor.kafka.partitioner import partition_of
from processor.stream.commit import bundles
from processor.stream.commit.writes import Batches

#: The exit code of a worker whose output Kafka refused: it must not commit the input.
EXIT_FAILED = 75


class Step(enum.IntEnum):
    """How far a checkpoint got: each value is the last step that completed."""

    OPEN = 0
    OUTPUTS = 1
    CHANGELOG = 2
    STORE = 3
    OFFSETS = 4


class CheckpointFailed(RuntimeError):
    """Kafka refused a record of the checkpoint: its input must not be committed."""

    def __init__(self, step: Step, cause: BaseException) -> None:
        super().__init__(f"checkpoint failed after step {step.name.lower()}: {cause!r}")
        self.step = step


class Store(Protocol):
    """A table's changes made within one checkpoint (steps 2 and 3)."""

    async def acknowledge(self) -> object:
        """Send the changed keys' changelog records and wait until Kafka acknowledged them."""

    def write_local(self) -> None:
        """Write the acknowledged changes to the local store, with their changelog offsets."""


#: What a record batch of one record adds to its key and value, at most (Kafka's v2 format:
#: a 61-byte header, the record's varints, attributes and header count), rounded up.
BATCH_OVERHEAD = 128


class OutputTooLarge(ValueError):
    """A record larger than its topic takes: Kafka would refuse it, so it is never sent, and the
    input it was made for is dead-lettered as `too_large` instead (`Checkpoint.check`)."""

    def __init__(self, what: str, topic: str, size: int, limit: int) -> None:
        super().__init__(
            f"{what} would be a record of {size + BATCH_OVERHEAD:,} bytes with its batch; "
            f"{topic} takes at most {limit + BATCH_OVERHEAD:,} (max.message.bytes)"
        )


@dataclass(frozen=True)
class Layout:
    """What a checkpoint knows of the topics it writes to: their partition counts, which of
    them carry bundles, and the largest record (key and value) each takes."""

    partitions: Mapping[str, int]
    bundled: frozenset[str]
    limits: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, specs: Mapping[str, t.TopicSpec]) -> Layout:
        """The layout of the declared topics: the three internal topics carry bundles."""
        internal = frozenset({t.CUSTOMER_EVENTS, t.IDENTITY_LINKS, t.IDENTITY_ROUTES})
        return cls(
            {name: spec.partitions for name, spec in specs.items()},
            internal,
            {name: t.record_limit(spec) - BATCH_OVERHEAD for name, spec in specs.items()},
        )

    def check(self, topic: str, key: bytes | None, value: bytes | None, what: str) -> None:
        """Raise OutputTooLarge if this record would not fit `topic`. Called before anything is
        kept for the input: a record Kafka refuses at the commit would stop the worker, and
        the replay would meet it again."""
        limit = self.limits.get(topic)
        size = len(key or b"") + len(value or b"")
        if limit is not None and size > limit:
            raise OutputTooLarge(what, topic, size, limit)


Commit = Callable[[dict[Any, int]], Awaitable[None]]


class Checkpoint:
    """The records made for one batch of input and the offsets it consumed, until `commit()`."""

    def __init__(
        self, producer: Any, layout: Layout, commit: Commit, stores: Sequence[Store] = ()
    ) -> None:
        self.step = Step.OPEN
        self._producer = producer
        self._layout = layout
        self._commit = commit
        self._stores = stores
        self._batches = Batches()
        #: Bundles in the order begun, and the open one per (topic, partition).
        self._bundles: list[tuple[str, int, bundles.Builder]] = []
        self._open: dict[tuple[str, int], bundles.Builder] = {}
        #: topic-partition -> the next offset to read, for the inputs consumed.
        self.offsets: dict[Any, int] = {}
        #: (counter, labels) -> how much to add to it at step 3.
        self._counts: dict[tuple[Any, tuple[str, ...]], float] = {}

    def consumed(self, tp: Any, offset: int) -> None:
        """The input at `offset` of `tp` is handled: commit past it."""
        self.offsets[tp] = offset + 1

    def count(self, counter: Any, *labels: str, amount: float = 1) -> None:
        """Add `amount` to a Prometheus counter (with `labels`) once the checkpoint's records
        are kept: one increment per counter and labels per checkpoint, not one per message
        (each takes the counter's lock; the agents count several per event)."""
        key = (counter, labels)
        self._counts[key] = self._counts.get(key, 0) + amount

    def check(self, topic: str, key: bytes | None, value: bytes | None, what: str) -> None:
        """Raise OutputTooLarge if this record would not fit `topic` (`Layout.check`)."""
        self._layout.check(topic, key, value, what)

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Keep one record for `topic`: in a bundle for a bundled topic, else in the record
        batch of its partition (the key's, as Kafka's partitioner picks it; spread when None)."""
        partitions = self._layout.partitions[topic]
        partition = next(_spread) % partitions if key is None else partition_of(key, partitions)
        if topic in self._layout.bundled:
            builder = self._open.get((topic, partition))
            if builder is None or not builder.fits(key or b"", value):
                builder = self._open[topic, partition] = bundles.Builder()
                self._bundles.append((topic, partition, builder))
            builder.add(key or b"", value)
        else:
            self._batches.add(self._producer, topic, partition, key, value)

    async def commit(self) -> None:
        """Run the steps in order; CheckpointFailed if Kafka refused a record (input not
        committed). A rebalance that took the partitions away fails only step 4, as
        aiokafka's CommitFailedError: the next owner reads the input again."""
        for topic, partition, builder in self._bundles:
            self._batches.add(self._producer, topic, partition, None, builder.value())
        self._bundles.clear()
        self._open.clear()
        try:
            for delivered, _ in await self._batches.send():
                await delivered
            self.step = Step.OUTPUTS
            for store in self._stores:
                await store.acknowledge()
            self.step = Step.CHANGELOG
        except Exception as exc:
            raise CheckpointFailed(self.step, exc) from exc
        for store in self._stores:
            store.write_local()
        for (counter, labels), amount in self._counts.items():
            (counter.labels(*labels) if labels else counter).inc(amount)
        self.step = Step.STORE
        if self.offsets:
            await self._commit(self.offsets)
        self.step = Step.OFFSETS


#: Where records without a key go: round-robin over the topic's partitions.
_spread = itertools.count()
