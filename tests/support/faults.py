"""Support for the fault tests: their size, traffic, and the outputs read back from Kafka.

Everything here reads the broker, never a worker's metrics: a worker killed with SIGKILL takes
its counters with it, while the topics and the changelog keep the whole truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from processor import topics as t
from processor.journey.engine import action_id
from processor.stream.commit import bundles
from tests.support.kafka import read_all
from tests.support.traffic import midday_zone
from tests.support.worker import WorkerProcess

Msg = tuple[str, bytes | None, bytes | None]
#: Where a message landed: (topic, partition, offset).
Coord = tuple[str, int, int]

SIZE_ENV = "TOUCHPOINT_FAULT_EVENTS"
QUICK_SIZE = 20_000
CI_SIZE = 100_000
#: The topics the worker's consumer group reads; settled means committed up to their ends.
CONSUMED = (*t.INBOUND, t.CONTROL, t.IDENTITY_LINKS, t.IDENTITY_ROUTES, t.CUSTOMER_EVENTS)


def size() -> int:
    """Events per fault test: `TOUCHPOINT_FAULT_EVENTS`, else 100,000 under CI, else 20,000."""
    configured = os.environ.get(SIZE_ENV)
    if configured:
        return int(configured)
    return CI_SIZE if os.environ.get("CI", "").lower() == "true" else QUICK_SIZE


def timeout_s(share: float = 1.0) -> float:
    """A per-test time limit for a test that handles `share` of `size()` events, the shared
    baseline run included (it runs inside the first test that needs it)."""
    return 600 + size() * (0.012 + 0.006 * share)


def require_kafka() -> None:
    """Fault tests need a disk and transactions: Apache Kafka, not the embedded broker."""
    from tests.conftest import BROKER, require_apache_kafka

    if BROKER != "kafka":
        pytest.skip("runs in make test-kafka")
    require_apache_kafka()


def report(line: str) -> None:
    """A figure for the record: shown with `pytest -s`, and appended to the report file."""
    print(f"[faults] {line}", flush=True)
    out = os.environ.get("TOUCHPOINT_FAULT_REPORT")
    if out:
        with Path(out).open("a", encoding="utf-8") as f:
            f.write(line + "\n")


# -- traffic -----------------------------------------------------------------------------------


def _event(
    eid: str, typ: str, at: datetime, identity: dict[str, str], tz: str, **props: Any
) -> bytes:
    return orjson.dumps(
        {
            "event_id": eid,
            "type": typ,
            "occurred_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "identity": identity,
            "context": {"timezone": tz},
            "properties": props,
        }
    )


@dataclass
class Traffic:
    """Inbound messages in publishing order, and what is known about them by construction."""

    messages: list[Msg] = field(default_factory=list)
    #: Index in `messages` -> the dead-letter kind that message must get.
    invalid: dict[int, str] = field(default_factory=dict)
    #: Index in `messages` -> its event id, for every valid message.
    event_ids: dict[int, str] = field(default_factory=dict)
    #: The people (canonical keys) of each customer number, for taking subsets.
    people: dict[int, str] = field(default_factory=dict)
    #: Index in `messages` -> customer number.
    owner: dict[int, int] = field(default_factory=dict)

    def add(self, msg: Msg, customer: int, event_id: str | None, kind: str | None = None) -> None:
        i = len(self.messages)
        self.messages.append(msg)
        self.owner[i] = customer
        if kind is not None:
            self.invalid[i] = kind
        elif event_id is not None:
            self.event_ids[i] = event_id

    def subset(self, every: int, first: int = 0) -> Traffic:
        """The messages of every `every`-th customer from customer number `first` on: people
        do not share identifiers, so their outcomes are the same whether or not the others'
        events are processed too."""
        out = Traffic()
        for i, msg in enumerate(self.messages):
            c = self.owner[i]
            if c % every == first:
                out.add(msg, c, self.event_ids.get(i), self.invalid.get(i))
        out.people = {c: p for c, p in self.people.items() if c % every == first}
        return out

    def split(self, at: int) -> tuple[Traffic, Traffic]:
        """The first `at` messages and the rest, each with what is known about them."""
        head, tail = Traffic(), Traffic()
        for i, msg in enumerate(self.messages):
            part = head if i < at else tail
            part.add(msg, self.owner[i], self.event_ids.get(i), self.invalid.get(i))
        head.people = tail.people = dict(self.people)
        return head, tail


def customers(n_events: int, *, now: datetime | None = None, tz: str | None = None) -> Traffic:
    """About `n_events` messages of four kinds of customer on three channels, with identity
    links, repeated event ids and bad input, laid over ten minutes ending two minutes before
    `now`.

    An undisturbed run has one outcome (two runs on fresh brokers give equal outputs); waits
    (the shortest is the 1-hour cart reminder) fall due 48 minutes after `now` at the
    earliest, after the tests that use them, and no trigger gets stale (the shortest staleness
    window is a day).
    `tz` is a zone where `now` is midday, so that quiet hours never move an action.
    """
    now = now or datetime.now(UTC)
    tz = tz or midday_zone(now)
    count = max(1, n_events * 100 // 360 + 1)  # 3.64 messages per customer on average
    base = now.replace(microsecond=0) - timedelta(minutes=12)
    step_ms = max(1, 10 * 60 * 1000 // count)
    out = Traffic()
    for i in range(count):
        at = base + timedelta(milliseconds=i * step_ms)
        gap = timedelta(seconds=1)
        group = i % 4
        events: list[tuple[str, str, bytes]] = []

        def ev(
            topic: str, eid: str, typ: str, when: datetime, ident: dict[str, str], /, **p: Any
        ) -> None:
            events.append((topic, eid, _event(eid, typ, when, ident, tz, **p)))  # noqa: B023

        if group == 0:  # web: browses, signs up (linking the email), fills a cart, buys
            key, ident = f"C-{i}", {"customer_id": f"C-{i}"}
            ev(t.WEB, f"w{i}-1", "page_view", at, ident, url="/")
            ev(t.WEB, f"w{i}-2", "product_view", at + gap, ident, product_id="P-1",
               category="mugs")  # fmt: skip
            ev(t.WEB, f"w{i}-3", "signup", at + 2 * gap, {**ident, "email": f"c{i}@example.com"},
               consent={"email": i % 8 != 4, "sms": False})  # fmt: skip
            ev(t.WEB, f"w{i}-4", "cart_add", at + 3 * gap, ident, product_id="P-1",
               quantity=1, price=19.5, currency="EUR")  # fmt: skip
            if i % 3:
                ev(t.WEB, f"w{i}-5", "order_placed", at + 4 * gap, ident, order_id=f"O-{i}",
                   value=19.5, currency="EUR")  # fmt: skip
        elif group == 1:  # anonymous visitor who subscribes
            key, ident = f"anon:ck-{i}", {"anonymous_id": f"ck-{i}"}
            ev(t.WEB, f"a{i}-1", "page_view", at, ident, url="/")
            ev(t.WEB, f"a{i}-2", "search", at + gap, ident, query="mug")
            ev(t.WEB, f"a{i}-3", "newsletter_subscribe", at + 2 * gap, ident)
        elif group == 2:  # email recipient, address written sloppily upstream
            key, ident = f"email:e{i}@example.com", {"email": f"  E{i}@Example.com "}
            for n, typ in enumerate(("email_delivered", "email_opened", "email_clicked")):
                extra = {"url": "/mugs"} if typ == "email_clicked" else {}
                ev(t.EMAIL, f"e{i}-{n + 1}", typ, at + n * gap, ident, campaign_id="fall",
                   **extra)  # fmt: skip
        else:  # store visitor with a loyalty card
            key, ident = f"loyalty:L-{i}", {"loyalty_id": f"L-{i}"}
            ev(t.STORE, f"s{i}-1", "store_visit", at, ident, store_id="S-1")
            ev(t.STORE, f"s{i}-2", "consultation", at + gap, ident, store_id="S-1",
               topic="mugs")  # fmt: skip
            ev(t.STORE, f"s{i}-3", "pos_purchase", at + 2 * gap, ident, store_id="S-1",
               order_id=f"POS-{i}", value=40.0)  # fmt: skip
        out.people[i] = key
        for topic, eid, value in events:
            out.add((topic, key.encode(), value), i, eid)
        if i % 5 == 0:  # the upstream retried: the same event again
            topic, eid, value = events[0]
            out.add((topic, key.encode(), value), i, eid)
        if i % 40 == 7:  # and some bad input, of every kind, from the same upstreams
            kind, msg = _bad(i, at)
            out.add(msg, i, None, kind)
    return out


@dataclass
class Shoppers(Traffic):
    """Shoppers who fill a cart; half of them buy at once, which cancels the cart reminder."""

    #: customer id -> the cart's event id, for every customer whose reminder falls due.
    due: dict[str, str] = field(default_factory=dict)
    #: customer ids whose reminder a purchase cancelled.
    cancelled: set[str] = field(default_factory=set)


def shoppers(n_events: int, start: datetime, spread_s: float, *, tz: str | None = None) -> Shoppers:
    """About `n_events` messages: each shopper signs up (email consent) and fills a cart, at a
    moment spread evenly over `spread_s` seconds from `start`; every other one buys a second
    later. All of a shopper's events carry only the customer id, so they arrive in order."""
    tz = tz or midday_zone(start)
    count = max(2, n_events * 10 // 25)  # 2.5 events per shopper
    out = Shoppers()
    for i in range(count):
        at = start + timedelta(seconds=spread_s * i / count)
        cid = f"C-T{i}"
        ident = {"customer_id": cid}
        events = [
            (f"{cid}-signup", _event(f"{cid}-signup", "signup", at, ident, tz,
                                     consent={"email": True})),
            (f"{cid}-cart", _event(f"{cid}-cart", "cart_add", at, ident, tz, product_id="P-1",
                                   quantity=1, price=9.5, currency="EUR")),
        ]  # fmt: skip
        if i % 2:
            events.append((f"{cid}-order", _event(f"{cid}-order", "order_placed",
                                                  at + timedelta(seconds=1), ident, tz,
                                                  order_id=f"O-{i}", value=9.5,
                                                  currency="EUR")))  # fmt: skip
            out.cancelled.add(cid)
        else:
            out.due[cid] = f"{cid}-cart"
        out.people[i] = cid
        for eid, value in events:
            out.add((t.WEB, cid.encode(), value), i, eid)
    return out


def _bad(i: int, at: datetime) -> tuple[str, Msg]:
    anon = {"anonymous_id": f"ck-bad-{i}"}
    key = f"bad-{i}".encode()
    variants: list[tuple[str, Msg]] = [
        ("decode", (t.WEB, key, b"\xff\xfe not utf-8")),
        ("decode", (t.EMAIL, key, b'{"event_id": "cut off')),
        ("validation", (t.WEB, key, _event(f"bad{i}", "page_view", at, {}, "UTC"))),
        ("unknown_type", (t.STORE, key, _event(f"bad{i}", "teleport", at, anon, "UTC"))),
        ("future_timestamp", (t.EMAIL, key, _event(f"bad{i}", "email_opened",
                                                   at + timedelta(days=30), anon, "UTC",
                                                   campaign_id="c"))),
        ("channel_mismatch", (t.WEB, key, _event(f"bad{i}", "email_opened", at, anon, "UTC",
                                                 campaign_id="c"))),
    ]  # fmt: skip
    return variants[(i // 40) % len(variants)]


class Publisher:
    """Publishes messages from a thread, in chunks spread over `spread_s` seconds, and records
    where each landed; the fault tests disturb the workers meanwhile."""

    def __init__(self, bootstrap: str, messages: Sequence[Msg], *, spread_s: float,
                 chunks: int = 20) -> None:  # fmt: skip
        self.bootstrap = bootstrap
        self.messages = list(messages)
        self.spread_s = spread_s
        self.chunks = chunks
        self.coords: list[Coord] = []
        self.error: BaseException | None = None
        self.finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        #: Held while a chunk is being sent; `paused()` takes it to hold publishing back.
        self._sending = threading.Lock()

    def start(self) -> Publisher:
        self._thread.start()
        return self

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold publishing back (after the chunk in flight) until the block ends."""
        with self._sending:
            yield

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout_s: float = 600.0) -> list[Coord]:
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise AssertionError(f"publishing did not finish within {timeout_s} s")
        if self.error is not None:
            raise self.error
        assert len(self.coords) == len(self.messages)
        return self.coords

    def _run(self) -> None:
        try:
            started = time.monotonic()
            per = -(-len(self.messages) // self.chunks)
            for n, start in enumerate(range(0, len(self.messages), per)):
                pause = started + n * self.spread_s / self.chunks - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                chunk = self.messages[start : start + per]
                with self._sending:
                    self.coords += asyncio.run(produce_recorded(self.bootstrap, chunk))
            self.finished_at = time.monotonic()
        except BaseException as exc:
            self.error = exc


# -- Kafka I/O -------------------------------------------------------------------------------


async def produce_recorded(
    bootstrap: str, messages: Sequence[Msg], *, batch: int = 5000
) -> list[Coord]:
    """Send the messages (acks=all; idempotent on Apache Kafka, the embedded broker has no
    producer ids) and return where each one landed, in order."""
    from tests.conftest import BROKER

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=BROKER == "kafka", linger_ms=5,
        max_request_size=8 * 1024 * 1024, request_timeout_ms=60_000,
    )  # fmt: skip
    await producer.start()
    coords: list[Coord] = []
    try:
        for start in range(0, len(messages), batch):
            futures = [
                await producer.send(topic, value, key=key)
                for topic, key, value in messages[start : start + batch]
            ]
            for meta in await asyncio.gather(*futures):
                coords.append((meta.topic, meta.partition, meta.offset))
    finally:
        await producer.stop()
    return coords


async def _lag(bootstrap: str, topics: Iterable[str]) -> tuple[int, dict[Any, int]]:
    """(messages not yet committed by the workers, end offsets) over `topics`, each counted
    against the group that reads it (`topics.group_of`)."""
    topics = list(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    # A group's committed offsets through a consumer of that group that never joins it: the
    # embedded broker cannot answer the admin client's OffsetFetch.
    consumers = {
        group: AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
        for group in {t.group_of(topic) for topic in topics}
    }
    await admin.start()
    for consumer in consumers.values():
        await consumer.start()
    try:
        described = await admin.describe_topics(topics)
        partitions = [
            TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]
        ]
        some = next(iter(consumers.values()))
        ends = await some.end_offsets(partitions)
        committed = {tp: await consumers[t.group_of(tp.topic)].committed(tp) for tp in partitions}
    finally:
        for consumer in consumers.values():
            await consumer.stop()
        await admin.close()
    behind = 0
    for tp in partitions:
        done = committed[tp] or 0
        behind += max(0, ends[tp] - done)
    return behind, {(tp.topic, tp.partition): ends[tp] for tp in partitions}


async def _committed(bootstrap: str) -> int:
    """The sum of the offsets the workers' groups committed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        total = 0
        for group in (t.APP_ID, t.INGEST_GROUP):
            offsets = await admin.list_consumer_group_offsets(group)
            total += sum(max(0, meta.offset) for meta in offsets.values())
    finally:
        await admin.close()
    return total


def wait_progress(bootstrap: str, *, timeout_s: float) -> float:
    """Seconds until the worker group commits progress (its committed offsets grow)."""
    started = time.monotonic()
    first: int | None = None
    while time.monotonic() < started + timeout_s:
        try:
            now = asyncio.run(_committed(bootstrap))
        except Exception:  # the broker may not answer yet
            now = None
        if now is not None:
            if first is not None and now > first:
                return time.monotonic() - started
            first = now if first is None else first
        time.sleep(0.25)
    raise AssertionError(f"the workers committed no progress within {timeout_s} s")


def lag(bootstrap: str, topics: Iterable[str] = CONSUMED) -> int:
    """Records the worker group has not yet committed on `topics` (all that it consumes)."""
    return asyncio.run(_lag(bootstrap, topics))[0]


def wait_settled(bootstrap: str, *, timeout_s: float, quiet_s: float = 4.0) -> float:
    """Wait until the worker group has committed every consumed topic to its end and nothing
    new arrived for `quiet_s`; returns the seconds waited. Raises on the timeout."""
    started = time.monotonic()
    deadline = started + timeout_s
    quiet_since: float | None = None
    last_ends: dict[Any, int] | None = None
    behind = -1
    while time.monotonic() < deadline:
        try:
            behind, ends = asyncio.run(_lag(bootstrap, CONSUMED))
        except Exception as exc:  # the broker may be restarting
            behind, ends, quiet_since = -1, {}, None
            report(f"lag check failed: {type(exc).__name__}: {exc}")
        if behind == 0 and ends == last_ends:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= quiet_s:
                return time.monotonic() - started
        elif behind != 0:
            quiet_since = None
        last_ends = ends
        time.sleep(1.0)
    raise AssertionError(f"not settled within {timeout_s} s: {behind} messages behind")


# -- the outputs -----------------------------------------------------------------------------


def normalised(state: dict[str, Any]) -> dict[str, Any]:
    """A stored journey state without the values that record *when the worker* acted.

    `f` (the last emission of each repeat-limited step) and `sent` (send times of capped
    messages) hold the worker's clock at processing time, which differs between any two runs;
    which steps fired and how many capped messages went out are kept. Everything else is
    derived from the events' own times.

    `seen`, `t` (touchpoints), `r` (recent events) and `ids` (identifiers) are appended in the
    order events *arrive*, and a person's events take different paths through the worker (a
    signup that links an email passes the one identity-links partition, a page view does not),
    so a crash or a rebalance may change that order; their contents are compared, not their
    order. The stage history and everything else must be equal as they are.
    """
    out = dict(state)
    out["f"] = sorted(state["f"])
    out["sent"] = len(state["sent"])
    for arrival_ordered in ("seen", "t", "r", "ids"):
        out[arrival_ordered] = sorted(state[arrival_ordered], key=orjson.dumps)
    return out


@dataclass
class Outputs:
    """What a run left in Kafka."""

    #: Canonical key -> normalised state (forwarding markers left out).
    states: dict[str, dict[str, Any]]
    #: action_id -> how many copies were published.
    actions: Counter[str]
    #: (customer, from, to, trigger event) -> copies; merge records' wall-clock `at` left out.
    transitions: Counter[tuple[str, str | None, str, str]]
    #: Source coordinates -> dead-letter kinds (one per copy).
    letters: dict[Coord, list[str]]
    #: `event` envelopes on customer-events: inbound events routed to a person, replays included.
    routed: int
    #: action_id -> template, customer.
    action_info: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: For the undisturbed baseline: seconds from publishing to settled (the worker's pace).
    took_s: float = 0.0

    @property
    def seen(self) -> set[str]:
        """Every event id some person's state has processed."""
        return {eid for s in self.states.values() for eid in s["seen"]}

    def only(self, people: Iterable[str]) -> Outputs:
        """The outputs of these people alone (for comparing a subset's run with a full one)."""
        keep = set(people)
        return Outputs(
            states={k: v for k, v in self.states.items() if k in keep},
            actions=Counter(
                {a: n for a, n in self.actions.items() if self.action_info[a][1] in keep}
            ),
            transitions=Counter({k: n for k, n in self.transitions.items() if k[0] in keep}),
            letters={},
            routed=0,
            action_info={a: i for a, i in self.action_info.items() if i[1] in keep},
        )


async def read_outputs(bootstrap: str, *, committed_only: bool = False) -> Outputs:
    """Read the journey changelog, actions, transitions, dead letters and customer-events."""
    latest: dict[bytes, bytes | None] = {}
    for _, _, key, value in await read_all(bootstrap, t.JOURNEY_CHANGELOG,
                                           committed_only=committed_only):  # fmt: skip
        if key is not None:
            latest[key] = value
    states = {
        k.decode(): normalised(orjson.loads(v))
        for k, v in latest.items()
        if v is not None and not v.startswith(b'{"moved"')
    }
    actions: Counter[str] = Counter()
    info: dict[str, tuple[str, str]] = {}
    for *_, value in await read_all(bootstrap, t.ACTIONS, committed_only=committed_only):
        a = orjson.loads(value or b"{}")
        actions[a["action_id"]] += 1
        info[a["action_id"]] = (a["template"], a["customer_id"])
    transitions: Counter[tuple[str, str | None, str, str]] = Counter()
    for *_, value in await read_all(bootstrap, t.TRANSITIONS, committed_only=committed_only):
        tr = orjson.loads(value or b"{}")
        transitions[
            (tr["customer_id"], tr["from_stage"], tr["to_stage"], tr["trigger_event_id"])
        ] += 1
    letters: dict[Coord, list[str]] = {}
    for *_, value in await read_all(bootstrap, t.DEADLETTER, committed_only=committed_only):
        d = orjson.loads(value or b"{}")
        src = d["source"]
        letters.setdefault((src["topic"], src["partition"], src["offset"]), []).append(
            d["error"]["kind"]
        )
    routed = sum(
        1
        for *_, key, record in await read_all(
            bootstrap, t.CUSTOMER_EVENTS, committed_only=committed_only
        )
        for _, value in bundles.messages(key, record)
        if value.startswith(b'{"kind":"event"')
    )
    return Outputs(states, actions, transitions, letters, routed, info)


def differences(want: Outputs, got: Outputs, limit: int = 10) -> list[str]:
    """Where `got` differs from `want` in distinct action ids, transitions and states."""
    out: list[str] = []
    missing = set(want.actions) - set(got.actions)
    extra = set(got.actions) - set(want.actions)
    if missing or extra:
        out.append(f"action ids: {len(missing)} missing {sorted(missing)[:3]}, "
                   f"{len(extra)} extra {sorted(extra)[:3]}")  # fmt: skip
    if set(want.transitions) != set(got.transitions):
        a, b = set(want.transitions), set(got.transitions)
        out.append(f"transitions: missing {sorted(a - b, key=str)[:3]}, "
                   f"extra {sorted(b - a, key=str)[:3]}")  # fmt: skip
    if set(want.states) != set(got.states):
        a2, b2 = set(want.states), set(got.states)
        out.append(f"people: missing {sorted(a2 - b2)[:5]}, extra {sorted(b2 - a2)[:5]}")
    for key in sorted(set(want.states) & set(got.states)):
        if want.states[key] != got.states[key] and len(out) < limit:
            w, g = want.states[key], got.states[key]
            fields = {f: (w.get(f), g.get(f)) for f in set(w) | set(g) if w.get(f) != g.get(f)}
            out.append(f"state of {key}: {fields}")
    return out


def accounted(traffic: Traffic, coords: Sequence[Coord], got: Outputs) -> list[str]:
    """Every inbound message is processed (its event id in its person's state) or dead-lettered
    with the right kind, never both, and nothing is dead-lettered that was not sent as bad."""
    problems: list[str] = []
    seen = got.seen
    bad_coords: dict[Coord, str] = {}
    for i, coord in enumerate(coords):
        kind = traffic.invalid.get(i)
        if kind is not None:
            bad_coords[coord] = kind
            kinds = got.letters.get(coord)
            if not kinds or set(kinds) != {kind}:
                problems.append(f"message {i} at {coord}: dead letters {kinds}, want {kind}")
        else:
            if traffic.event_ids[i] not in seen:
                problems.append(f"message {i} at {coord}: event {traffic.event_ids[i]} missing")
            if coord in got.letters:
                problems.append(f"valid message {i} at {coord} dead-lettered: {got.letters[coord]}")
    stray = set(got.letters) - set(bad_coords)
    if stray:
        problems.append(f"{len(stray)} dead letters of no bad message: {sorted(stray)[:3]}")
    return problems[:20]


def expected_action_id(journey: str, step: str, customer: str, trigger: str) -> str:
    """The deterministic id of an action (as the engine computes it)."""
    return action_id(journey, step, customer, trigger)


def started(worker: WorkerProcess) -> float:
    """Start a worker and return the seconds until it was ready."""
    began = time.monotonic()
    worker.start(ready_timeout_s=180)
    return time.monotonic() - began


def kill(worker: WorkerProcess) -> None:
    """SIGKILL: no shutdown, no final commit, no flush of what is buffered."""
    proc, worker.proc = worker.proc, None
    assert proc is not None, "the worker was not started"
    assert proc.poll() is None, "the worker was not running"
    proc.kill()
    proc.wait()


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")
