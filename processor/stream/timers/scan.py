"""Reading the whole journey table as it was at one instant, without copying it into memory.

After every rebalance the stage counts (stream/observe.py) and the due-timer index
(stream/timers/clock.py) are derived again from the table, while the agents keep processing between
the scan's yields. Both reconcile what the agents change after the scan started (the stage
moves' log, the timer index's notes), so the scan must show the table as it was when it
started, whatever is written meanwhile.

With RocksDB, Faust keeps one database per partition. A RocksDB iterator reads from an implicit
snapshot taken when it is created: later writes, deletions and compactions do not show through
it. So a `Snapshot` creates one iterator per owned partition, all at once with no await in
between, and then reads them lazily, a batch at a time: memory stays flat however many people
the table holds (tests/unit/test_scan.py checks this on the binding Faust uses, rocksdict). The
explicit `Rdict.snapshot()` is no use here: in rocksdict 0.3 a point read honours it, but its
`items()` iterates the live database.

The scan reads past RocksDB's block cache. Faust gives each partition a cache of 2 GiB, and
right after a recovery the table sits in fresh files whose blocks a scan would all leave in the
cache: 1 GB more for a million people, kept after the scan.

A partition revoked during the scan is not read further: it is no longer ours, and holding its
iterator would keep its database open, so Faust could not open it again were it assigned back.

Other stores are copied at once. The memory store of tests and development is a dict, which
must not be iterated while the agents change it during a yield, and is small there. (So would
a RocksDB store on the python-rocksdb binding be, which this project does not install.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from itertools import islice
from typing import Any, NamedTuple

from rocksdict import ReadOptions

from processor.kafka.partitioner import partition_of
from processor.stream.extensions import internals

#: Rows read between yields to the event loop: a scan of a million keys must not starve the
#: consumer's heartbeats (the session timeout is seconds) nor the agents.
BATCH = 1000

#: (partition, key, stored value)
Row = tuple[int, bytes, bytes]


class _Part(NamedTuple):
    partition: int
    #: The partition's database, None for a copy.
    db: Any
    items: Iterator[tuple[bytes, bytes]]


def _bulk_read() -> ReadOptions:
    """Read options for a scan: the blocks it reads are not kept in the block cache."""
    options = ReadOptions()
    options.fill_cache(False)  # type: ignore[call-arg]  # the stub leaves out the flag
    return options


class Snapshot:
    """The rows of the owned partitions of `table` as they are at construction."""

    def __init__(self, table: Any, partitions: int, owned: Collection[int]) -> None:
        #: Owned partitions that were revoked before the scan read all of them.
        self.cut: set[int] = set()
        self._dbs: Mapping[int, Any] = {}
        self._skip: bytes | None = None
        databases = internals.rocksdb_partitions(table)
        if databases is not None:
            self._dbs = databases  # the store's own map: a revoked partition leaves it
            self._skip = internals.changelog_offset_key(table)  # kept with the data
            # Each iterator's snapshot is taken here, at its creation: all in one synchronous
            # step, so one instant for every partition.
            bulk = _bulk_read()
            self._parts = [
                _Part(p, db, db.items(read_opt=bulk))
                for p, db in sorted(self._dbs.items())
                if p in owned
            ]
        else:
            copied: dict[int, list[tuple[bytes, bytes]]] = {}
            for key, value in table.items():  # no await while the dict is read
                p = partition_of(key, partitions)
                if p in owned:  # the memory store also holds standby and revoked keys
                    copied.setdefault(p, []).append((key, value))
            self._parts = [_Part(p, None, iter(rows)) for p, rows in sorted(copied.items())]

    async def batches(self, size: int = BATCH) -> AsyncIterator[list[Row]]:
        """Every row once, in batches of at most `size`, yielding to the event loop after each
        (the agents run then)."""
        while self._parts:
            self._drop_revoked()
            if not self._parts:
                break
            partition, _, items = self._parts[0]
            chunk = list(islice(items, size))
            if len(chunk) < size:
                self._parts.pop(0)
            yield [(partition, k, v) for k, v in chunk if k != self._skip]
            await asyncio.sleep(0)

    def _drop_revoked(self) -> None:
        for part in [p for p in self._parts if p.db is not None]:
            if self._dbs.get(part.partition) is not part.db:
                self._parts.remove(part)
                self.cut.add(part.partition)
