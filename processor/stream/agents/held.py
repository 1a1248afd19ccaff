"""What a key of the journey table holds: a person's state, a marker pointing to the key the
person moved to (a merge), or erasure fences; and the states the journey agent stored last,
kept decoded."""

from __future__ import annotations

import orjson

from processor.journey import state as stored
from processor.journey.state import CustomerState
from processor.stream.agents import fences

#: A person merged into another leaves this behind, so late messages follow them.
_MOVED = b'{"moved":'


class Decoded:
    """The states the journey agent stored last, kept decoded beside their bytes.

    A person's events often come close together, within one checkpoint: the state read back
    for the next one is the very bytes object stored for the one before (the table holds
    its writes until the checkpoint commits), and decoding it again is wasted. A state is
    reused only for that same object, so a stale one is never used; a step never changes
    the state it is given, so the reused object is as it was decoded. Bounded: forgotten
    whole when it holds `most` keys (a checkpoint holds at most TOUCHPOINT_BATCH_MAX
    messages, 500 by default; what is stored before its commit is what can be reused).
    """

    def __init__(self, most: int = 1024) -> None:
        self._most = most
        self._by_key: dict[bytes, tuple[bytes, CustomerState]] = {}

    def held_at(self, key: bytes, raw: bytes | None) -> CustomerState | str | None:
        """`held_at(raw)`, decoded once per stored value."""
        kept = self._by_key.get(key)
        if kept is not None and kept[0] is raw:
            return kept[1]
        return held_at(raw)

    def keep(self, key: bytes, raw: bytes, state: CustomerState) -> None:
        """`raw` was stored at `key` as the encoding of `state`."""
        if len(self._by_key) >= self._most:
            self._by_key.clear()
        self._by_key[key] = (raw, state)


def held_at(raw: bytes | None) -> CustomerState | str | None:
    """The state at a key, the key its person moved to (a merge), or None."""
    if raw is not None and raw.startswith(_MOVED):
        return str(orjson.loads(raw)["moved"])
    if fences.is_fences(raw):
        return None
    return stored.decode(raw)


def state_of(raw: bytes | None) -> CustomerState | None:
    """The person's state at a key; None for nothing or a forwarding marker."""
    held = held_at(raw)
    return held if isinstance(held, CustomerState) else None


def moved(to: str) -> bytes:
    """The marker left at a key whose person moved to the key `to`."""
    return orjson.dumps({"moved": to})
