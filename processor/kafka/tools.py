"""Operator tools over plain aiokafka clients: apply/check topics, publish files, tail topics."""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from processor import topics as t
from processor.kafka import admin
from processor.kafka.clients import connected, connection_kwargs
from processor.settings import Settings
from processor.suggest import did_you_mean

TOPIC_OF_CHANNEL = {"web": t.WEB, "email": t.EMAIL, "store": t.STORE}
_KEY_ORDER = ("customer_id", "email", "loyalty_id", "anonymous_id")
#: The event time of a touchpoint and of a control command: what `publish --now` moves.
_TIME_FIELDS = ("occurred_at", "requested_at")


async def apply_topics(settings: Settings, say: Callable[[str], None] = print) -> list[str]:
    """Create the declared topics that are missing; `say` what was done."""
    specs = t.load(settings.topics_dir)
    client = AIOKafkaAdminClient(**connection_kwargs(settings))
    async with connected(client, settings, "the admin client creating the topics"):
        created = await admin.apply(client, specs, settings.topic_replication_factor)
    for name in created:
        say(f"created {name} ({specs[name].partitions} partitions)")
    say(f"{len(specs)} topics declared, {len(created)} created")
    return created


async def check_topics(settings: Settings) -> list[admin.Drift]:
    """Every declared topic that is missing or differs on the broker."""
    specs = t.load(settings.topics_dir)
    client = AIOKafkaAdminClient(**connection_kwargs(settings))
    async with connected(client, settings, "the admin client checking the topics"):
        return await admin.drift(client, specs)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, line.strip()


def route(line: bytes, topic: str | None) -> tuple[str, bytes | None]:
    """The topic (given, or from the event's `channel`) and key (its first identifier)."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        if topic is None:
            raise ValueError("not a JSON object, and no --topic given")
        return topic, None
    if topic is None:
        channel = event.get("channel")
        if channel not in TOPIC_OF_CHANNEL:
            raise ValueError("no --topic given and `channel` is not web, email or store")
        topic = TOPIC_OF_CHANNEL[channel]
    identity = event.get("identity")
    key = None
    if isinstance(identity, dict):
        key = next((str(identity[k]) for k in _KEY_ORDER if identity.get(k)), None)
    return topic, key.encode() if key else None


def _time_of(value: Any) -> datetime | None:
    """An RFC 3339 time with an offset; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def shift_to(path: Path, now: datetime) -> timedelta:
    """The offset that moves the file's latest event time that is not after `now` onto `now`
    (zero if there is none). Later times are left out: they are in the future on purpose."""
    latest: datetime | None = None
    for _, line in _lines(path):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        for name in _TIME_FIELDS:
            at = _time_of(event.get(name))
            if at is not None and at <= now and (latest is None or at > latest):
                latest = at
    return now - latest if latest is not None else timedelta(0)


def shifted(line: bytes, delta: timedelta) -> bytes:
    """`line` with its event time moved by `delta`, in UTC to the millisecond; a line that is
    not a JSON object or has no valid time is returned as it is (it is bad input on purpose)."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(event, dict):
        return line
    changed = False
    for name in _TIME_FIELDS:
        at = _time_of(event.get(name))
        if at is not None:
            moved = (at + delta).astimezone(UTC).isoformat(timespec="milliseconds")
            event[name] = moved.replace("+00:00", "Z")
            changed = True
    return orjson.dumps(event) if changed else line


#: At most this many of a file's unpublishable lines are listed.
_SHOWN_PROBLEMS = 10


def check_file(path: Path, topic: str | None) -> int:
    """The number of messages in a JSON-lines file, once every line is known to be routable;
    else ValueError listing the lines that are not (before anything was sent)."""
    problems = []
    count = 0
    for n, line in _lines(path):
        count += 1
        try:
            route(line, topic)
        except ValueError as exc:
            problems.append(f"{path}:{n}: {exc}")
    if problems:
        shown = problems[:_SHOWN_PROBLEMS]
        more = (
            f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        )
        raise ValueError(
            f"{path}: {len(problems)} of {count} line(s) cannot be published, nothing was sent:\n"
            + "\n".join(f"  {p}" for p in shown)
            + more
        )
    return count


def check_topic(settings: Settings, topic: str) -> None:
    """ValueError unless `topic` is declared under the topics folder (a typo would create one)."""
    declared = t.load(settings.topics_dir)
    if topic not in declared:
        raise ValueError(
            f"--topic {topic}: not a declared topic{did_you_mean(topic, declared)}; "
            "--any-topic publishes to an existing one anyway"
        )


async def check_exists(settings: Settings, topic: str) -> None:
    """ValueError unless `topic` exists on the cluster: publishing never creates a topic (a
    broker that creates topics on first use would, and one that does not would make the
    producer wait a minute for it)."""
    client = AIOKafkaAdminClient(**connection_kwargs(settings))
    async with connected(client, settings, "the admin client looking up the topic"):
        existing = await client.list_topics()
    if topic not in existing:
        raise ValueError(
            f"--topic {topic}: no such topic on the cluster{did_you_mean(topic, existing)}; "
            "create it first"
        )


class PublishInterrupted(KafkaError):  # type: ignore[misc]  # aiokafka has no types
    """Kafka failed part way through a file: how much of it was acknowledged."""

    def __init__(self, path: Path, acknowledged: int, total: int, cause: BaseException) -> None:
        super().__init__(
            f"{path}: the first {acknowledged} of {total} messages were acknowledged, then "
            f"{cause!r}; publishing the file again sends them again (the worker drops events "
            "it has processed, by event_id)"
        )


async def publish(
    settings: Settings,
    path: Path,
    topic: str | None,
    progress: Callable[[int, int], None],
    *,
    now: datetime | None = None,
    any_topic: bool = False,
) -> int:
    """Publish each line of a JSON-lines file as one message, exactly as written; with `now`,
    every event time first moves by one offset, so that the latest falls on `now`.

    The whole file is checked first (every line routable, `topic` declared unless `any_topic`,
    and existing): a bad line sends nothing. `progress(acknowledged, total)` follows it.
    Returns the number of messages Kafka acknowledged."""
    if topic is not None and not any_topic:
        check_topic(settings, topic)
    total = check_file(path, topic)
    if topic is not None:
        await check_exists(settings, topic)
    delta = shift_to(path, now) if now is not None else None
    producer = AIOKafkaProducer(**connection_kwargs(settings), linger_ms=5, acks="all")
    sent = acknowledged = 0
    async with connected(producer, settings, "the producer publishing the file"):
        pending = []
        try:
            for _, line in _lines(path):
                target, key = route(line, topic)
                if delta is not None:
                    line = shifted(line, delta)
                pending.append(await producer.send(target, line, key=key))
                sent += 1
                if sent % 1000 == 0:
                    await asyncio.gather(*pending)
                    pending.clear()
                    acknowledged = sent
                    progress(acknowledged, total)
            await asyncio.gather(*pending)
        except KafkaError as exc:
            raise PublishInterrupted(path, acknowledged, total, exc) from exc
    return sent


def _field(value: Any, path: str) -> Any:
    # `error.kind` reaches into nested objects; a missing step gives None.
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _matches(value: Any, filters: dict[str, str]) -> bool:
    return isinstance(value, dict) and all(str(_field(value, k)) == v for k, v in filters.items())


async def tail(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool,
    max_messages: int | None,
    idle_timeout_s: float | None,
    filters: dict[str, str],
    emit: Callable[[bytes], None],
) -> int:
    """Print messages of `topic` as JSON lines; stop after `max_messages` or when idle."""
    consumer = AIOKafkaConsumer(
        topic,
        **connection_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    shown = 0
    async with connected(consumer, settings, f"the consumer tailing {topic}"):
        while max_messages is None or shown < max_messages:
            timeout_ms = int((idle_timeout_s or 3600) * 1000)
            batch = await consumer.getmany(timeout_ms=timeout_ms)
            if not batch:
                if idle_timeout_s is not None:
                    break
                continue
            for records in batch.values():
                for record in records:
                    try:
                        value = orjson.loads(record.value) if record.value else None
                    except orjson.JSONDecodeError:
                        value = None
                    if filters and not _matches(value, filters):
                        continue
                    emit(record.value or b"null")
                    shown += 1
                    if max_messages is not None and shown >= max_messages:
                        return shown
    return shown


#: Each dead-letter kind has its own consumer group, so replaying one kind never skips the
#: letters of another: `<prefix>.<kind>`'s committed offset marks what was replayed.
REPLAY_GROUP_PREFIX = "touchpoint-deadletter-replay"
_REPLAYABLE = {*t.INBOUND, t.CONTROL}


@dataclass
class ReplayReport:
    """What `replay_deadletters` did, per kind."""

    replayed: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)


def _original(letter: dict[str, Any]) -> tuple[str, bytes | None, bytes]:
    """The source topic, key and value of a dead letter; ValueError when it cannot be rebuilt."""
    source = letter.get("source") or {}
    topic = source.get("topic")
    if topic not in _REPLAYABLE:
        raise ValueError(f"source topic {topic!r} is not an inbound topic")
    if letter.get("raw_truncated"):
        raise ValueError(
            "only a prefix of the value was kept (too large); re-publish it from "
            f"{topic} partition {source.get('partition')} offset {source.get('offset')}"
        )
    raw = str(letter.get("raw", ""))
    value = base64.b64decode(raw) if letter.get("raw_encoding") == "base64" else raw.encode()
    key = source.get("key")
    if key is not None:
        key = base64.b64decode(key) if source.get("key_encoding") == "base64" else key.encode()
    return topic, key, value


async def replay_deadletters(
    settings: Settings,
    kinds: list[str],
    *,
    dry_run: bool,
    say: Callable[[str], None],
    progress: Callable[[int, int], None] = lambda read, total: None,
) -> ReplayReport:
    """Re-publish the dead letters of `kinds` not replayed before to their source topics.

    Reads the letters dead-lettered before the run started (a replayed message that fails
    again is a new letter, for a later run), publishes, waits for the acknowledgements, then
    commits the kind's group offset. A crash between the two replays those letters again: the events
    keep their event_id, so the processor drops what it already processed. `say` gets a line
    per refused letter (and, with `dry_run`, per letter it would replay); `progress(read, total)`
    follows the reading of each kind's letters.
    """
    report = ReplayReport()
    producer = AIOKafkaProducer(**connection_kwargs(settings), acks="all", linger_ms=5)
    async with connected(producer, settings, "the producer replaying dead letters"):
        for kind in kinds:
            await _replay_kind(settings, kind, producer, report, dry_run, say, progress)
    return report


async def _replay_kind(
    settings: Settings,
    kind: str,
    producer: AIOKafkaProducer,
    report: ReplayReport,
    dry_run: bool,
    say: Callable[[str], None],
    progress: Callable[[int, int], None],
) -> None:
    consumer = AIOKafkaConsumer(
        **connection_kwargs(settings),
        group_id=f"{REPLAY_GROUP_PREFIX}.{kind}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    async with connected(consumer, settings, f"the consumer reading {kind} dead letters"):
        # Letters dead-lettered from now on (a replayed message failing again, say) are left for
        # the next run: the commit stops at the first of them in each partition.
        started_ms = int(time.time() * 1000)
        # Asks the broker for the topic's partitions (`consumer.topics()` fills a throwaway
        # copy of the metadata, so on Apache Kafka the consumer's own cache never had them).
        partitions = await producer.partitions_for(t.DEADLETTER)
        tps = [TopicPartition(t.DEADLETTER, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        total = sum([ends[tp] - await consumer.position(tp) for tp in tps])
        read = 0
        later: dict[TopicPartition, int] = {}
        pending = []
        while active := [tp for tp in tps if tp not in later]:
            batch = await consumer.getmany(*active, timeout_ms=500)
            if not batch and await _caught_up(consumer, active):
                break
            read += sum(len(records) for records in batch.values())
            progress(min(read, total), total)
            for tp, records in batch.items():
                for r in records:
                    if tp in later:
                        break
                    if r.timestamp >= started_ms:
                        later[tp] = r.offset
                        break
                    letter = orjson.loads(r.value) if r.value else {}
                    if _field(letter, "error.kind") == kind:
                        pending += await _replay_one(
                            producer, letter, f"{tp.topic}[{tp.partition}]@{r.offset}",
                            kind, report, dry_run, say,
                        )  # fmt: skip
        await asyncio.gather(*pending)
        if not dry_run and tps:
            await consumer.commit(
                {tp: later[tp] if tp in later else await consumer.position(tp) for tp in tps}
            )


async def _caught_up(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    # After an empty poll. The end offsets alone are not enough: the embedded broker can
    # report one less than a batch just written holds; an empty fetch is the real end.
    end = await consumer.end_offsets(tps)
    for tp in tps:
        if await consumer.position(tp) < end[tp]:
            return False
    return True


async def _replay_one(
    producer: AIOKafkaProducer,
    letter: dict[str, Any],
    where: str,
    kind: str,
    report: ReplayReport,
    dry_run: bool,
    say: Callable[[str], None],
) -> list[asyncio.Future[Any]]:
    try:
        topic, key, value = _original(letter)
    except (ValueError, binascii.Error) as exc:
        report.refused[kind] += 1
        say(f"refused {where} ({kind}): {exc}")
        return []
    report.replayed[kind] += 1
    if dry_run:
        say(f"would replay {where} ({kind}) to {topic}")
    return [] if dry_run else [await producer.send(topic, value, key=key)]
