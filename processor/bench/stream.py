"""The benchmark's event stream: generated once from the simulator, cached, replayed.

The cache is a plain binary file of (topic, key, value) records, so that it can hold every
dead-letter kind (a `decode` message is not JSON) and is read back fast. Events in the file
occur on the simulator's fixed file clock; `Restamp` moves them to just before the moment they
are published, so that the journey sees them as live traffic, not months old (which would make
every action stale).
"""

from __future__ import annotations

import hashlib
import re
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from processor import topics as t
from processor.simulate import invalid
from processor.simulate.generator import SimConfig, Stats, generate

#: The simulator's file clock (as `touchpoint simulate --output`).
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_MAGIC = b"TPBENCH1\n"
_HEADER = struct.Struct("<BHI")  # topic index, key length (0xFFFF: no key), value length
_NO_KEY = 0xFFFF
_TOPICS = (t.WEB, t.EMAIL, t.STORE, t.CONTROL)

Message = tuple[str, bytes | None, bytes]


@dataclass(frozen=True)
class StreamSpec:
    """What to generate. The same spec gives the same bytes (and the same cache file)."""

    events: int
    customers: int
    seed: int = 6
    invalid_fraction: float = 0.01
    duplicate_fraction: float = 0.01
    #: The worker's TOUCHPOINT_MAX_EVENT_BYTES in the benchmark: `too_large` messages are just
    #: above it. The default 1 MiB would make each of them a megabyte on the wire.
    max_event_bytes: int = 16384
    #: Simulated seconds per wall second: a day in a minute, so the stream spans ~2.5 hours.
    compression: float = 1440.0
    #: First touchpoints spread over this many simulated days: customers in every phase of
    #: their lives at once, as in a live stream.
    spread_days: float = 30.0

    def name(self) -> str:
        """The cache file's name: the spec's hash, readable size first."""
        digest = hashlib.sha256(orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS))
        return f"stream-{self.events}-{digest.hexdigest()[:10]}"

    def sim_config(self) -> SimConfig:
        """The simulator's config for this spec."""
        return SimConfig(
            start=EPOCH,
            customers=self.customers,
            seed=self.seed,
            compression=self.compression,
            events=self.events,
            spread_s=self.spread_days * 86400.0,
            invalid_fraction=self.invalid_fraction,
            duplicate_fraction=self.duplicate_fraction,
            invalid_kinds=invalid.KINDS,
            max_event_bytes=self.max_event_bytes,
        )


@dataclass(frozen=True)
class StreamInfo:
    """What a cached stream holds."""

    path: Path
    messages: int
    valid: int
    duplicates: int
    invalid: dict[str, int]
    by_type: dict[str, int]
    by_topic: dict[str, int]
    customers: int
    bytes: int
    #: Seconds after EPOCH of the last message's `occurred_at` (send_at on the file clock).
    last_s: float

    @property
    def valid_total(self) -> int:
        """Messages the processor accepts: valid events and their duplicate copies."""
        return self.valid + self.duplicates

    def to_json(self) -> dict[str, Any]:
        """For the results file."""
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def ensure(spec: StreamSpec, folder: Path, *, log: Any = print) -> StreamInfo:
    """The cached stream for `spec`, generating it first if needed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec.name()}.bin"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        d = orjson.loads(meta.read_bytes())
        d["path"] = path
        return StreamInfo(**d)
    log(f"generating {spec.events:,} events from {spec.customers:,} customers into {path}")
    stats = Stats()
    by_topic: dict[str, int] = {}
    started = time.monotonic()
    last_s = 0.0
    n = size = 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        f.write(_MAGIC)
        for msg in generate(spec.sim_config(), stats):
            size += _write(f, msg.topic, msg.key, msg.value)
            by_topic[msg.topic] = by_topic.get(msg.topic, 0) + 1
            last_s = msg.send_at
            n += 1
            if n % 100_000 == 0:
                log(f"  {n:,} generated ({time.monotonic() - started:.0f} s)")
    tmp.rename(path)
    info = StreamInfo(
        path=path,
        messages=n,
        valid=stats.valid,
        duplicates=stats.duplicates,
        invalid=dict(sorted(stats.invalid.items())),
        by_type=dict(stats.by_type.most_common()),
        by_topic=by_topic,
        customers=spec.customers,
        bytes=size,
        last_s=last_s,
    )
    body = info.to_json()
    del body["path"]
    meta.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
    log(f"  {n:,} messages, {size / 1e6:.0f} MB, in {time.monotonic() - started:.0f} s")
    return info


def _write(f: BinaryIO, topic: str, key: bytes | None, value: bytes) -> int:
    klen = _NO_KEY if key is None else len(key)
    f.write(_HEADER.pack(_TOPICS.index(topic), klen, len(value)))
    if key is not None:
        f.write(key)
    f.write(value)
    return _HEADER.size + len(key or b"") + len(value)


def read(path: Path, limit: int | None = None) -> Iterator[Message]:
    """The cached messages in order, at most `limit`."""
    with path.open("rb") as f:
        if f.read(len(_MAGIC)) != _MAGIC:
            raise ValueError(f"{path} is not a benchmark stream")
        n = 0
        while limit is None or n < limit:
            head = f.read(_HEADER.size)
            if not head:
                return
            topic, klen, vlen = _HEADER.unpack(head)
            key = None if klen == _NO_KEY else f.read(klen)
            yield _TOPICS[topic], key, f.read(vlen)
            n += 1


_OCCURRED = re.compile(rb'"occurred_at":"([^"]{19,40})"')


class Restamp:
    """Moves every `occurred_at` by one offset, so that the last one falls on `last_at`.

    The offset keeps the gaps between events; a value that names no parseable `occurred_at`
    (a broken message) is left as it is.
    """

    def __init__(self, last_s: float, last_at: datetime) -> None:
        self.delta = last_at - (EPOCH + timedelta(seconds=last_s))

    def __call__(self, value: bytes) -> bytes:
        return _OCCURRED.sub(self._shift, value, count=1)

    def _shift(self, m: re.Match[bytes]) -> bytes:
        try:
            at = datetime.fromisoformat(m.group(1).decode().replace("Z", "+00:00"))
        except ValueError:
            return m.group(0)
        moved = (at + self.delta).astimezone(UTC).isoformat(timespec="milliseconds")
        return b'"occurred_at":"' + moved.replace("+00:00", "Z").encode() + b'"'


def last_s_of(path: Path, limit: int) -> float:
    """The latest `occurred_at` (seconds after EPOCH) among the first `limit` messages."""
    latest = 0.0
    for _, _, value in read(path, limit):
        m = _OCCURRED.search(value)
        if m is None:
            continue
        try:
            at = datetime.fromisoformat(m.group(1).decode().replace("Z", "+00:00"))
        except ValueError:
            continue
        s = (at - EPOCH).total_seconds()
        if s < 3650 * 86400 / 2:  # not a `future_timestamp` message (ten years ahead)
            latest = max(latest, s)
    return latest


if __name__ == "__main__":  # pragma: no cover - a helper for looking at a cached stream
    for topic, key, value in read(Path(sys.argv[1]), int(sys.argv[2]) if sys.argv[2:] else 5):
        print(topic, key, value[:200])
