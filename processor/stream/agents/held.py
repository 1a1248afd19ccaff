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

    A person's events often come close together: the state read back for the next one is
    what was stored for the one before, and decoding it again is wasted. A kept state is
    reused only when the bytes read back are the bytes it was stored as, so a stale one is
    never used (whoever wrote the key since); a step never changes the state it is given, so
    the reused object is as it was decoded. Bounded: the key stored longest ago goes first
    when `most` are kept (a decoded state takes about 6 KB; in the order of the benchmark's
    quick stream, 4,096 keys hold the person's state for 64 % of the events).
    """

    def __init__(self, most: int = 4096) -> None:
        self._most = most
        #: key -> (the bytes stored, their state), the key stored longest ago first.
        self._by_key: dict[bytes, tuple[bytes, CustomerState]] = {}

    def held_at(self, key: bytes, raw: bytes | None) -> CustomerState | str | None:
        """`held_at(raw)`, decoded once per stored value."""
        kept = self._by_key.get(key)
        if kept is not None and kept[0] == raw:
            return kept[1]
        return held_at(raw)

    def keep(self, key: bytes, raw: bytes, state: CustomerState) -> None:
        """`raw` was stored at `key` as the encoding of `state`."""
        by_key = self._by_key
        if by_key.pop(key, None) is None and len(by_key) >= self._most:
            del by_key[next(iter(by_key))]
        by_key[key] = (raw, state)


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
