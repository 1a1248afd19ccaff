"""Faust's table manager with a recovery that reads the changelogs in bulk first
(stream/extensions/restore.py), and measures each changelog's true end."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import TopicPartition
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP

from processor.stream.extensions import internals
from processor.stream.extensions.restore import TIME_SHARE, Part, last_offsets, restore

log = logging.getLogger(__name__)


class BulkRecovery(Recovery):
    """Faust's recovery, with each changelog's true end measured, and its active changelog
    partitions read in bulk first."""

    #: aiokafka connection options for the bulk reads; None leaves everything to Faust.
    connection: Mapping[str, Any] | None = None

    async def _build_highwaters(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        await super()._build_highwaters(consumer, tps, destination, title)
        if self.connection is None or not tps:
            return
        reported = {TopicPartition(tp.topic, tp.partition): destination[tp] for tp in tps}
        measured = await last_offsets(self.connection, reported)
        later = sum(1 for tp, last in measured.items() if last > reported[tp])
        if later:
            log.info("%d of %d %s changelog partitions end after the offset the broker reports "
                     "(it counts the end by record batch)", later, len(tps), title)  # fmt: skip
        for tp, last in measured.items():
            destination[TP(tp.topic, tp.partition)] = last

    async def _build_offsets(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        await super()._build_offsets(consumer, tps, destination, title)
        if title == "active" and self.connection is not None:
            await self._bulk(tps, destination)

    def _parts(self, tps: set[TP], offsets: Mapping[TP, int]) -> list[Part]:
        parts = []
        for tp in sorted(tps):
            table = self.tp_to_table[tp]
            end = self.active_highwaters.get(tp, -1) + 1
            start = offsets[tp] + 1
            database = internals.rocksdb_partition(table)
            if internals.rocksdb_partitions(table) is None or database is None or start >= end:
                continue
            key = internals.changelog_offset_key(table)
            parts.append(
                Part(
                    TopicPartition(tp.topic, tp.partition), database(tp.partition), start, end, key
                )
            )
        return parts

    async def _bulk(self, tps: set[TP], destination: Any) -> None:
        assert self.connection is not None
        parts = self._parts(tps, destination)
        if not parts:
            return
        budget = TIME_SHARE * float(self.app.conf.broker_request_timeout)
        try:
            await restore(self.connection, parts, budget, committed_only=self.app.in_transaction)
        finally:
            # Whatever was written is in the database with its offset: Faust goes on from there.
            for p in parts:
                destination[TP(p.tp.topic, p.tp.partition)] = p.applied


class Tables(TableManager):
    """Faust's table manager, with `BulkRecovery` as its recovery service."""

    #: Set by the app factory: aiokafka connection options for the bulk restore.
    bulk_connection: Mapping[str, Any] | None = None

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            recovery = BulkRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
            recovery.connection = self.bulk_connection
            self._recovery = recovery
        return self._recovery
