"""A fetch's records are handed out oldest first, each partition's in its own order."""

from __future__ import annotations

from dataclasses import dataclass

from faust.types import TP

from processor.stream.extensions.scheduler import OldestFirst


@dataclass(frozen=True)
class Record:
    offset: int
    timestamp: int


WEB, STORE, EMAIL = TP("touchpoints.web", 0), TP("touchpoints.store", 0), TP("touchpoints.email", 1)


def _order(records: dict[TP, list[Record]]) -> list[tuple[str, int]]:
    return [(tp.topic, r.offset) for tp, r in OldestFirst().iterate(records)]


def test_records_of_several_partitions_come_oldest_first() -> None:
    records = {
        WEB: [Record(0, 100), Record(1, 300), Record(2, 500)],
        STORE: [Record(7, 200), Record(8, 600)],
        EMAIL: [Record(3, 50)],
    }
    assert _order(records) == [
        ("touchpoints.email", 3),
        ("touchpoints.web", 0),
        ("touchpoints.store", 7),
        ("touchpoints.web", 1),
        ("touchpoints.web", 2),
        ("touchpoints.store", 8),
    ]


def test_a_partition_keeps_its_own_order_whatever_its_timestamps() -> None:
    """Two producers with skewed clocks write one partition: its order is Kafka's, not theirs;
    equal times go in partition order."""
    records = {WEB: [Record(0, 500), Record(1, 100), Record(2, 400)], STORE: [Record(9, 400)]}
    assert _order(records) == [
        ("touchpoints.store", 9),
        ("touchpoints.web", 0),
        ("touchpoints.web", 1),
        ("touchpoints.web", 2),
    ]
    tie = {WEB: [Record(0, 1)], STORE: [Record(5, 1)]}
    assert _order(tie) == [("touchpoints.web", 0), ("touchpoints.store", 5)]
    assert _order({STORE: [Record(2, 9), Record(3, 1)]}) == [
        ("touchpoints.store", 2),
        ("touchpoints.store", 3),
    ]
    assert _order({}) == []
