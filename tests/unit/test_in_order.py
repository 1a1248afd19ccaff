"""The internal topics' records in offset order (stream/extensions/consumer.py `InOrder`)."""

from __future__ import annotations

from typing import NamedTuple

from processor import topics as t
from processor.stream.extensions.consumer import READS_AGAIN, InOrder


class TP(NamedTuple):
    topic: str
    partition: int


class Record(NamedTuple):
    offset: int


CE = TP(t.CUSTOMER_EVENTS, 1)
WEB = TP(t.WEB, 0)


def records(*offsets: int) -> list[Record]:
    return [Record(o) for o in offsets]


def test_records_in_order_go_on_as_fetched() -> None:
    order = InOrder()
    assert order.take({CE: records(0, 1, 2)}) == ({CE: records(0, 1, 2)}, {})
    assert order.take({CE: records(3, 4)}) == ({CE: records(3, 4)}, {})


def test_records_past_a_skipped_offset_are_held_back_and_read_again_from_it() -> None:
    order = InOrder()
    order.take({CE: records(164, 165)})
    # Within one fetch: the records before the gap go on.
    assert order.take({CE: records(166, 168, 169)}) == ({CE: records(166)}, {CE: 167})
    # Across fetches: nothing of the partition goes on until the missing one comes.
    assert order.take({CE: records(168, 169)}) == ({}, {CE: 167})
    assert order.take({CE: records(167, 168, 169)}) == ({CE: records(167, 168, 169)}, {})


def test_other_topics_and_seeks_back_are_followed_as_they_come() -> None:
    order = InOrder()
    order.take({CE: records(10, 11)})
    # An inbound topic is not this consumer's order to keep (compacted topics have gaps too).
    assert order.take({WEB: records(5, 9)}) == ({WEB: records(5, 9)}, {})
    # A seek back (after a rebalance, Faust seeks to the committed offset): from there on.
    assert order.take({CE: records(4, 5)}) == ({CE: records(4, 5)}, {})
    assert order.take({CE: records(7)}) == ({}, {CE: 6})


def test_moved_partitions_start_afresh() -> None:
    order = InOrder()
    order.take({CE: records(10)})
    order.forget()
    assert order.take({CE: records(40)}) == ({CE: records(40)}, {})


def test_a_gap_that_never_fills_goes_on_to_the_units_guard() -> None:
    order = InOrder()
    order.take({CE: records(0)})
    for _ in range(READS_AGAIN):
        assert order.take({CE: records(2, 3)}) == ({}, {CE: 1})
    # The records go on as fetched: the agents' units stop the worker at the gap.
    assert order.take({CE: records(2, 3)}) == ({CE: records(2, 3)}, {})
