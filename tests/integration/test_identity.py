"""One person across web, email and store, on a real broker: linking, merging, erasure."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor import topics as t
from processor.journey.state import CustomerState
from processor.stream.agents import fences
from tests.conftest import fresh_broker
from tests.support.kafka import produce, read_changelog, read_json
from tests.support.worker import WorkerProcess, metric_values

pytestmark = pytest.mark.broker

# Recent enough that no wait (the 1-hour cart reminder is the shortest) falls due in a test.
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
Msg = tuple[str, bytes | None, bytes]
TOPIC = {"web": t.WEB, "email": t.EMAIL, "store": t.STORE}


def ev(n: int, channel: str, typ: str, identity: dict[str, str], **props: Any) -> Msg:
    """Event number `n` (its minute after BASE is `n`, so the order in time is fixed)."""
    value = {
        "event_id": f"id-{n}-{typ}",
        "type": typ,
        "occurred_at": (BASE + timedelta(minutes=n)).isoformat().replace("+00:00", "Z"),
        "identity": identity,
        "context": {"timezone": "Europe/Berlin"},
        "properties": props,
    }
    return TOPIC[channel], next(iter(identity.values())).encode(), orjson.dumps(value)


ANON = {"anonymous_id": "ck-1"}
BROWSE_SIGNUP_LOGIN = [
    ev(1, "web", "page_view", ANON, url="/"),
    ev(2, "web", "product_view", ANON, product_id="P-1", category="mugs"),
    ev(3, "web", "cart_add", ANON, product_id="P-1", quantity=2, price=5.0, currency="EUR"),
    ev(4, "web", "signup", {"customer_id": "C-1", "email": "Ana@Example.com "},
       consent={"email": True}),
    ev(5, "web", "login", {"email": "ana@example.com", "anonymous_id": "ck-1"}),
]  # fmt: skip
LOYALTY = [
    ev(10, "web", "product_view", {"customer_id": "C-2"}, product_id="P-2", category="tea"),
    ev(11, "store", "loyalty_signup", {"customer_id": "C-2", "loyalty_id": "L-2"},
       loyalty_id="L-2"),
]  # fmt: skip
LOYALTY_POS = [
    ev(12, "store", "pos_purchase", {"loyalty_id": "L-2"}, store_id="S-1", order_id="POS-1",
       value=30.0, currency="EUR"),
]  # fmt: skip
EMAIL_ONLY = [
    ev(20, "web", "signup", {"customer_id": "C-3", "email": "bo@example.com"},
       consent={"email": True}),
    ev(21, "email", "email_clicked", {"email": "BO@example.com"}, campaign_id="fall", url="/x"),
]  # fmt: skip


def _worker(bootstrap: str, tmp: Path) -> WorkerProcess:
    return WorkerProcess(bootstrap, tmp)


def _processed(worker: WorkerProcess) -> float:
    return sum(metric_values(worker.metrics(), "touchpoint_events_processed_total").values())


def _until(what: Callable[[], bool], timeout_s: float, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.3)


def _publish_and_wait(bootstrap: str, worker: WorkerProcess, msgs: list[Msg]) -> None:
    before = _processed(worker)
    asyncio.run(produce(bootstrap, msgs))
    _until(lambda: _processed(worker) >= before + len(msgs), 60, worker)


def _people(bootstrap: str) -> dict[str, CustomerState]:
    table = asyncio.run(read_changelog(bootstrap, t.JOURNEY_CHANGELOG))
    return {
        k.decode(): CustomerState.from_dict(orjson.loads(v))
        for k, v in table.items()
        if not v.startswith(b'{"moved"') and not fences.is_fences(v)
    }


def _settled(bootstrap: str, worker: WorkerProcess, want: set[str]) -> dict[str, CustomerState]:
    """Wait until exactly the people `want` hold state, and it stopped changing: merges hand
    state over asynchronously, so one read may come between a hand-over and its arrival."""
    seen: list[dict[str, Any]] = []
    people: dict[str, CustomerState] = {}

    def done() -> bool:
        nonlocal people
        people = _people(bootstrap)
        seen.append({k: s.to_dict() for k, s in people.items()})
        stable = len(seen) >= 4 and all(x == seen[-1] for x in seen[-4:])
        return set(people) == want and stable

    _until(done, 60, worker)
    return people


def test_anonymous_browsing_signup_and_login_end_as_one_customer(
    topics_ready: str, tmp_path: Path
) -> None:
    with _worker(topics_ready, tmp_path) as worker:
        # Browsing, then signing up, then logging in: each lands before the next is sent.
        _publish_and_wait(topics_ready, worker, BROWSE_SIGNUP_LOGIN[:3])
        _publish_and_wait(topics_ready, worker, BROWSE_SIGNUP_LOGIN[3:4])
        _publish_and_wait(topics_ready, worker, BROWSE_SIGNUP_LOGIN[4:])
        people = _settled(topics_ready, worker, {"C-1"})
        transitions = asyncio.run(read_json(topics_ready, t.TRANSITIONS, expect=5, timeout_s=20))
        merges = metric_values(worker.metrics(), "touchpoint_identity_merges_total")
    person = people["C-1"]
    assert person.stage == "consideration"
    assert person.cart is not None
    assert set(person.cart.items) == {"P-1"}
    assert {"anonymous_id:ck-1", "customer_id:C-1", "email:ana@example.com"} <= set(
        person.identifiers
    )
    assert {e for e in person.seen} == {
        f"id-{n}-{typ}"
        for n, typ in [
            (1, "page_view"),
            (2, "product_view"),
            (3, "cart_add"),
            (4, "signup"),
            (5, "login"),
        ]
    }
    got = sorted(
        (
            str(tr["customer_id"]),
            str(tr["from_stage"]),
            str(tr["to_stage"]),
            str(tr["trigger_type"]),
        )
        for tr in transitions
    )
    assert got == sorted([
        ("anon:ck-1", "None", "awareness", "page_view"),
        ("anon:ck-1", "awareness", "consideration", "product_view"),
        ("C-1", "None", "awareness", "signup"),
        ("C-1", "awareness", "consideration", "identity_merge"),
    ])  # fmt: skip
    # The merge is dated by the event that linked the profiles (the login), not by the clock.
    (merge,) = [tr for tr in transitions if tr["trigger_type"] == "identity_merge"]
    assert datetime.fromisoformat(str(merge["at"])) == BASE + timedelta(minutes=5)
    assert sum(merges.values()) == 1


def test_loyalty_card_registered_online_then_used_at_the_pos(
    topics_ready: str, tmp_path: Path
) -> None:
    with _worker(topics_ready, tmp_path) as worker:
        _publish_and_wait(topics_ready, worker, LOYALTY)
        _publish_and_wait(topics_ready, worker, LOYALTY_POS)
        people = _settled(topics_ready, worker, {"C-2"})
        transitions = asyncio.run(read_json(topics_ready, t.TRANSITIONS, expect=3, timeout_s=20))
    purchase = [tr for tr in transitions if tr["to_stage"] == "purchase"]
    assert len(purchase) == 1
    assert purchase[0]["customer_id"] == "C-2"
    assert purchase[0]["trigger_type"] == "pos_purchase"
    assert purchase[0]["channels_before_conversion"] == ["web", "store"]
    assert people["C-2"].purchases == 1
    assert people["C-2"].stage == "purchase"


def test_an_email_click_with_only_the_email_lands_on_the_right_person(
    topics_ready: str, tmp_path: Path
) -> None:
    with _worker(topics_ready, tmp_path) as worker:
        _publish_and_wait(topics_ready, worker, EMAIL_ONLY[:1])
        _publish_and_wait(topics_ready, worker, EMAIL_ONLY[1:])
        people = _settled(topics_ready, worker, {"C-3"})
        transitions = asyncio.run(read_json(topics_ready, t.TRANSITIONS, expect=2, timeout_s=20))
    moves = [(tr["customer_id"], tr["to_stage"], tr["trigger_type"]) for tr in transitions]
    assert sorted(moves) == [("C-3", "awareness", "signup"),
                             ("C-3", "consideration", "email_clicked")]  # fmt: skip
    assert people["C-3"].stage == "consideration"


def test_an_email_claimed_by_a_second_customer_never_merges_the_first(
    topics_ready: str, tmp_path: Path
) -> None:
    """Conflict: C-9 gives the address first, then C-4 claims it too. The address belongs to
    the smaller id (C-4) from then on, but C-9 stays a person of their own with everything."""
    claims = [
        ev(30, "web", "signup", {"customer_id": "C-9", "email": "kim@example.com"},
           consent={"email": True}),
        ev(31, "web", "cart_add", {"customer_id": "C-9"}, product_id="P-9", quantity=1,
           price=9.0, currency="EUR"),
        ev(32, "web", "signup", {"customer_id": "C-4", "email": "kim@example.com"},
           consent={"email": True}),
    ]  # fmt: skip
    click = [ev(33, "email", "email_clicked", {"email": "kim@example.com"}, campaign_id="c",
                url="/x")]  # fmt: skip
    with _worker(topics_ready, tmp_path) as worker:
        _publish_and_wait(topics_ready, worker, claims[:2])
        _settled(topics_ready, worker, {"C-9"})
        _publish_and_wait(topics_ready, worker, claims[2:])
        _publish_and_wait(topics_ready, worker, click)
        people = _settled(topics_ready, worker, {"C-4", "C-9"})
        text = worker.metrics()
    assert sum(metric_values(text, "touchpoint_identity_conflicts_total").values()) == 1
    assert sum(metric_values(text, "touchpoint_identity_merges_total").values()) == 0
    c9, c4 = people["C-9"], people["C-4"]
    assert (c9.stage, c9.cart is not None, sorted(c9.seen)) == (
        "consideration",
        True,
        ["id-30-signup", "id-31-cart_add"],
    )
    assert (c4.stage, sorted(c4.seen)) == ("consideration", ["id-32-signup", "id-33-email_clicked"])


def _projection(people: dict[str, CustomerState]) -> dict[str, Any]:
    """What must not depend on the order events arrived in."""
    return {
        key: {
            "stage": s.stage,
            "purchases": s.purchases,
            "ltv": s.lifetime_value,
            "cart": sorted(s.cart.items.items()) if s.cart else None,
            "consent": s.consent,
            "identifiers": sorted(s.identifiers),
            "seen": sorted(s.seen),
            "timers": sorted(s.timers),
        }
        for key, s in people.items()
    }


def test_shuffled_across_topics_and_partitions_gives_the_same_final_state(
    topics_ready: str, tmp_path: Path
) -> None:
    everything = BROWSE_SIGNUP_LOGIN + LOYALTY + LOYALTY_POS + EMAIL_ONLY
    with _worker(topics_ready, tmp_path / "ordered") as worker:
        for msg in everything:  # one at a time, in time order
            _publish_and_wait(topics_ready, worker, [msg])
        ordered = _projection(_settled(topics_ready, worker, {"C-1", "C-2", "C-3"}))

    rnd = random.Random(7)
    for attempt in range(2):
        shuffled: list[Msg] = []
        for topic, _key, value in rnd.sample(everything, len(everything)):
            # Any key at all: upstream keys are not trusted for routing.
            shuffled.append((topic, f"k{rnd.randrange(1000)}".encode(), value))
        with (
            fresh_broker(tmp_path / f"broker{attempt}", topics=True) as fresh,
            _worker(fresh, tmp_path / f"shuffled{attempt}") as worker,
        ):
            _publish_and_wait(fresh, worker, shuffled)
            got = _projection(_settled(fresh, worker, {"C-1", "C-2", "C-3"}))
        differences = [
            (key, field, value, got.get(key, {}).get(field))
            for key, fields in ordered.items()
            for field, value in fields.items()
            if got.get(key, {}).get(field) != value
        ]
        assert differences == []


def _erase(n: int) -> Msg:
    """An erasure of C-1 requested at minute `n` after BASE."""
    erase = {"command": "erase_customer", "customer_id": "C-1", "request_id": "req-1",
             "requested_at": (BASE + timedelta(minutes=n)).isoformat()}  # fmt: skip
    return t.CONTROL, b"C-1", orjson.dumps(erase)


def _split_fences(table: dict[bytes, bytes]) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """The table without its erasure fences, and the fences."""
    kept = {k: v for k, v in table.items() if not fences.is_fences(v)}
    fenced = {k: v for k, v in table.items() if k not in kept}
    assert all(k.startswith(b"~fences:") for k in fenced)
    return kept, fenced


def _digests(fenced: dict[bytes, bytes]) -> int:
    """How many names the fences hold (bucket keys are `~fences:<partition>:<xx>`)."""
    return sum(len(orjson.loads(v)["fences"]) for k, v in fenced.items() if k.count(b":") == 2)


PERSONAL = [b"C-1", b"ck-1", b"ana@", b"Ana@"]


def test_an_erased_person_leaves_no_key_in_any_table(topics_ready: str, tmp_path: Path) -> None:
    with _worker(topics_ready, tmp_path) as worker:
        _publish_and_wait(topics_ready, worker, BROWSE_SIGNUP_LOGIN + LOYALTY)
        _settled(topics_ready, worker, {"C-1", "C-2"})
        asyncio.run(produce(topics_ready, [_erase(25)]))
        _settled(topics_ready, worker, {"C-2"})

        def graph_clean() -> bool:
            nodes, _ = _split_fences(asyncio.run(read_changelog(topics_ready, t.GRAPH_CHANGELOG)))
            return set(nodes) == {b"c:C-2", b"l:L-2"}

        _until(graph_clean, 30, worker)
        graph_fences = _split_fences(asyncio.run(read_changelog(topics_ready, t.GRAPH_CHANGELOG)))
        journey, journey_fences = _split_fences(
            asyncio.run(read_changelog(topics_ready, t.JOURNEY_CHANGELOG))
        )
        aliases = asyncio.run(read_changelog(topics_ready, t.ALIAS_CHANGELOG))
        transitions = asyncio.run(read_json(topics_ready, t.TRANSITIONS, expect=8, timeout_s=10))
    # C-2's loyalty card left a forwarding marker at its own key; C-1 left nothing anywhere.
    assert set(journey) == {b"C-2", b"loyalty:L-2"}
    assert orjson.loads(journey[b"loyalty:L-2"]) == {"moved": "C-2"}
    assert set(aliases) == {b"l:L-2"}
    receipts = [tr for tr in transitions if tr["to_stage"] == "erased"]
    assert [(r["customer_id"], r["from_stage"], r["trigger_event_id"]) for r in receipts] == [
        ("C-1", "consideration", "req-1")
    ]
    # By the settings in topics/: transitions and dead letters are kept 30 days, plus a day
    # until their segment rolls; every other topic goes sooner.
    assert receipts[0]["copies_gone_within_days"] == 31
    assert {tr["copies_gone_within_days"] for tr in transitions if tr is not receipts[0]} == {None}
    # The fences that guard against late events hold digests, no identifier: the graph's
    # fences C-1's four nodes, the journey's the four keys they had.
    assert (_digests(graph_fences[1]), _digests(journey_fences)) == (3, 3)
    stored = [*graph_fences[1].values(), *journey_fences.values()]
    assert not [p for p in PERSONAL for v in stored if p in v]


def test_events_in_flight_at_an_erasure_do_not_bring_the_person_back(
    topics_ready: str, tmp_path: Path
) -> None:
    """Events that happened before the erasure but arrive after it (still queued elsewhere)
    are dropped at every entrance; an event after the request is a new person."""
    late = [
        ev(6, "web", "page_view", ANON, url="/late"),  # one anonymous id: route, journey
        ev(7, "email", "email_opened", {"email": "ana@example.com"}, campaign_id="c"),
        ev(8, "web", "product_view", {"customer_id": "C-1"}, product_id="P-9", category="x"),
        ev(9, "web", "login", {"email": "ana@example.com", "anonymous_id": "ck-1"}),  # links
    ]
    after = [ev(26, "web", "page_view", {"customer_id": "C-1"}, url="/back")]
    with _worker(topics_ready, tmp_path) as worker:
        _publish_and_wait(topics_ready, worker, BROWSE_SIGNUP_LOGIN)
        _settled(topics_ready, worker, {"C-1"})
        asyncio.run(produce(topics_ready, [_erase(25)]))

        def receipted() -> bool:
            seen = asyncio.run(read_json(topics_ready, t.TRANSITIONS, expect=99, timeout_s=0.5))
            return any(tr["to_stage"] == "erased" for tr in seen)

        _until(receipted, 30, worker)
        before = asyncio.run(read_json(topics_ready, t.TRANSITIONS, expect=99, timeout_s=0.5))
        _publish_and_wait(topics_ready, worker, late)
        dropped = metric_values(worker.metrics(), "touchpoint_erased_events_dropped_total")
        _publish_and_wait(topics_ready, worker, after)
        _settled(topics_ready, worker, {"C-1"})
        nodes, _ = _split_fences(asyncio.run(read_changelog(topics_ready, t.GRAPH_CHANGELOG)))
        journey, _ = _split_fences(asyncio.run(read_changelog(topics_ready, t.JOURNEY_CHANGELOG)))
        transitions = asyncio.run(
            read_json(topics_ready, t.TRANSITIONS, expect=len(before) + 1, timeout_s=10)
        )
        actions = asyncio.run(read_json(topics_ready, t.ACTIONS, expect=1, timeout_s=5))
    assert dropped == {
        (("stage", "identity"),): 1.0,  # the login would have re-linked the cookie and email
        (("stage", "journey"),): 3.0,
    }
    assert nodes == {}
    # C-1 again, as a new person from minute 26 on: nothing of the erased one.
    assert set(journey) == {b"C-1"}
    again = CustomerState.from_dict(orjson.loads(journey[b"C-1"]))
    assert (again.stage, again.cart, again.identifiers) == ("awareness", None, ["customer_id:C-1"])
    assert [tr["to_stage"] for tr in before].count("erased") == 1
    seen_before = {orjson.dumps(tr) for tr in before}  # partitions interleave: compare as sets
    after_receipt = [tr for tr in transitions if orjson.dumps(tr) not in seen_before]
    assert len(transitions) == len(before) + 1
    assert [
        (tr["customer_id"], tr["to_stage"], tr["trigger_event_id"]) for tr in after_receipt
    ] == [("C-1", "awareness", "id-26-page_view")]
    assert [a["template"] for a in actions] == ["welcome"]  # from the signup, before the erasure


def test_a_customers_link_seen_before_an_erasure_links_again_after_it(
    topics_ready: str, tmp_path: Path
) -> None:
    """The link agent skips a customer's link that the graph holds already; an erasure takes
    the links away, so the same identifiers seen after it are linked again."""
    login = {"customer_id": "C-1", "anonymous_id": "ck-1"}
    before = [ev(n, "web", "page_view", login, url=f"/{n}") for n in (1, 2, 3)]
    with _worker(topics_ready, tmp_path) as worker:
        _publish_and_wait(topics_ready, worker, before)
        asyncio.run(produce(topics_ready, [_erase(25)]))

        def graph_empty() -> bool:
            nodes, _ = _split_fences(asyncio.run(read_changelog(topics_ready, t.GRAPH_CHANGELOG)))
            return nodes == {}

        _until(graph_empty, 30, worker)
        _publish_and_wait(topics_ready, worker, [ev(26, "web", "page_view", login, url="/26")])

        def graph_linked() -> bool:
            nodes, _ = _split_fences(asyncio.run(read_changelog(topics_ready, t.GRAPH_CHANGELOG)))
            return set(nodes) == {b"c:C-1", b"a:ck-1"}

        _until(graph_linked, 30, worker)
        nodes, _ = _split_fences(asyncio.run(read_changelog(topics_ready, t.GRAPH_CHANGELOG)))
    assert orjson.loads(nodes[b"c:C-1"]) == {"n": ["a:ck-1"], "c": "C-1"}
    assert orjson.loads(nodes[b"a:ck-1"]) == {"n": ["c:C-1"], "c": "C-1"}


def _erase_by(kind: str, value: str, request: str, n: int) -> Msg:
    """An erasure naming the person by one identifier of `kind`, requested at minute `n`."""
    erase = {"command": "erase_customer", kind: value, "request_id": request,
             "requested_at": (BASE + timedelta(minutes=n)).isoformat()}  # fmt: skip
    return t.CONTROL, value.encode(), orjson.dumps(erase)


SUBSCRIBER = [  # known only by an email and a cookie: an anonymous person named by the email
    ev(22, "web", "newsletter_subscribe", {"email": "Sub@Example.com", "anonymous_id": "ck-s"}),
    ev(23, "email", "email_delivered", {"email": "sub@example.com"}, campaign_id="news"),
]


def test_an_erasure_may_name_the_person_by_any_one_identifier(
    topics_ready: str, tmp_path: Path
) -> None:
    with _worker(topics_ready, tmp_path) as worker:
        _publish_and_wait(topics_ready, worker, BROWSE_SIGNUP_LOGIN + LOYALTY + SUBSCRIBER)
        _settled(topics_ready, worker, {"C-1", "C-2", "email:sub@example.com"})
        erasures = [
            _erase_by("loyalty_id", "L-2", "req-card", 26),  # a customer, by their card
            _erase_by("email", " SUB@example.com", "req-mail", 26),  # an anonymous subscriber
            _erase_by("anonymous_id", "ck-1", "req-cookie", 26),  # C-1, by a linked cookie
        ]
        asyncio.run(produce(topics_ready, erasures))
        _settled(topics_ready, worker, set())
        transitions = asyncio.run(read_json(topics_ready, t.TRANSITIONS, expect=12, timeout_s=10))

        def graph_empty() -> bool:
            nodes, _ = _split_fences(asyncio.run(read_changelog(topics_ready, t.GRAPH_CHANGELOG)))
            return nodes == {}

        _until(graph_empty, 30, worker)
    receipts = sorted(
        (r["trigger_event_id"], r["customer_id"], r["from_stage"])
        for r in transitions
        if r["to_stage"] == "erased"
    )
    assert receipts == [
        ("req-card", "C-2", "consideration"),
        ("req-cookie", "C-1", "consideration"),
        ("req-mail", "email:sub@example.com", "awareness"),
    ]
