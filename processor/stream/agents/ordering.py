"""The order in which the worker hands out the records of one fetch: oldest first.

A fetch returns records of many partitions at once. Faust hands them out round-robin between
topics, so in a backlog one topic runs ahead of another: a person's in-store return could be
read before the page view that came an hour earlier on the web topic, and move them as if it
came first. Here the fetch's records are merged by their Kafka timestamps instead (each
partition's records stay in their own order), as Kafka Streams picks the partition whose next
record is oldest. It orders what one fetch holds; records of a later fetch come after.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

_STAMP = itemgetter(0)


def _stamped(tp: Any, records: Sequence[Any]) -> Iterator[tuple[int, Any, Any]]:
    for record in records:
        yield record.timestamp, tp, record


def oldest_first(records: Mapping[Any, Sequence[Any]]) -> Iterator[tuple[Any, Any]]:
    """(partition, record) for each of a fetch's records: each partition's records in their
    order, merged oldest first by Kafka timestamp (ties: partition order)."""
    if len(records) == 1:
        ((tp, only),) = records.items()
        return ((tp, record) for record in only)
    merged = heapq.merge(*(_stamped(tp, rs) for tp, rs in records.items()), key=_STAMP)
    return ((tp, record) for _, tp, record in merged)
