"""The journey table's coalesced writes (stream/writes.py), on a stand-in for a Faust table."""

from __future__ import annotations

from typing import Any

from processor.stream.writes import Coalesced

Record = tuple[int, bytes, bytes | None]


class Table:
    """What `Coalesced` uses of a Faust table: item writes that send a changelog record each
    (partition -1 here: Faust finds it through the current event), the store under `data`,
    and `send_changelog`."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog: list[Record] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.data[key] = value
        self.changelog.append((-1, key, value))

    def pop(self, key: bytes, default: Any = None) -> Any:
        if key in self.data:
            self.changelog.append((-1, key, None))
        return self.data.pop(key, default)

    def send_changelog(self, partition: int, key: bytes, value: bytes | None, **kw: Any) -> None:
        assert kw == {"key_serializer": "raw", "value_serializer": "raw"}
        self.changelog.append((partition, key, value))


def test_outside_a_batch_every_write_is_a_plain_table_write() -> None:
    table = Table()
    writes = Coalesced(table)
    writes.put(b"C-1", b"a", 3)
    writes.put(b"C-1", b"b", 3)
    writes.delete(b"C-1", 3)
    writes.delete(b"C-2", 3)
    assert table.data == {}
    assert table.changelog == [(-1, b"C-1", b"a"), (-1, b"C-1", b"b"), (-1, b"C-1", None)]


def test_a_batch_sends_each_key_once_with_its_last_value() -> None:
    table = Table()
    writes = Coalesced(table)
    with writes.batch():
        writes.put(b"C-1", b"a", 3)
        writes.put(b"C-2", b"x", 5)
        writes.put(b"C-1", b"b", 3)
        # Readers see every write at once; only the changelog waits.
        assert table.data == {b"C-1": b"b", b"C-2": b"x"}
        assert table.changelog == []
        assert writes.pending == 2
    assert sorted(table.changelog) == [(3, b"C-1", b"b"), (5, b"C-2", b"x")]
    assert writes.pending == 0


def test_a_deletion_in_a_batch_is_one_tombstone_and_nothing_for_an_absent_key() -> None:
    table = Table()
    table.data[b"C-1"] = b"a"
    writes = Coalesced(table)
    with writes.batch():
        writes.put(b"C-2", b"x", 5)
        writes.delete(b"C-2", 5)  # written and deleted within the batch: the tombstone remains
        writes.delete(b"C-1", 3)
        writes.delete(b"C-3", 7)  # never there: no record at all
    assert table.data == {}
    assert sorted(table.changelog) == [(3, b"C-1", None), (5, b"C-2", None)]
