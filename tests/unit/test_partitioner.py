"""The partition a key goes to: Kafka's murmur2, as the Java client and aiokafka compute it."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from processor.kafka.partitioner import murmur2, partition_of


def test_murmur2_gives_the_java_clients_values() -> None:
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed ints there).
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for data, signed in cases.items():
        assert murmur2(data) == signed & 0xFFFFFFFF, data


def test_murmur2_equals_aiokafkas_for_every_length() -> None:
    rng = random.Random(7)
    for length in range(0, 130):
        for _ in range(20):
            data = rng.randbytes(length)
            assert murmur2(data) == aiokafka_murmur2(data), data


def test_partition_of_matches_the_producers_default_partitioner() -> None:
    partitioner = DefaultPartitioner()
    for key in (b"C-1", b"email:a@example.com", b"anon:ck-77f", b"x" * 200, b"\xff\x00\x80"):
        for partitions in (1, 3, 8, 12):
            every = list(range(partitions))
            assert partition_of(key, partitions) == partitioner(key, every, every)


def test_partition_of_is_what_the_java_client_chooses() -> None:
    # Utils.toPositive(Utils.murmur2(key)) % 8, kafka-clients 4.1.2: other producers agree.
    assert [partition_of(k, 8) for k in (b"C-1", b"C-2", b"anon:ck-1")] == [7, 2, 7]
