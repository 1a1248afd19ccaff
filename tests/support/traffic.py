"""Generated inbound traffic with exactly known expected outputs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from processor import topics as t
from processor.journey.engine import action_id

Msg = tuple[str, bytes | None, bytes | None]


@dataclass
class Expected:
    """What the worker must emit for the generated input."""

    valid: list[Msg] = field(default_factory=list)
    invalid: list[tuple[Msg, str]] = field(default_factory=list)
    #: (customer_id, from_stage, to_stage, trigger_event_id, channels_before_conversion)
    transitions: Counter[tuple[str, str | None, str, str, tuple[str, ...]]] = field(
        default_factory=Counter
    )
    #: (action_id, customer_id, template, trigger_event_id): welcome mails and, after a first
    #: purchase, onboarding's order_welcome. Timers (tips, review request, retention, lapse)
    #: are armed but lie days ahead, so they emit nothing during the test.
    actions: set[tuple[str, str, str, str]] = field(default_factory=set)
    duplicates: int = 0
    suppressed_consent: int = 0
    processed: Counter[str] = field(default_factory=Counter)

    @property
    def messages(self) -> list[Msg]:
        """Valid and invalid messages interleaved deterministically."""
        invalid = [m for m, _ in self.invalid]
        out: list[Msg] = []
        step = max(1, len(self.valid) // max(1, len(invalid)))
        for i, msg in enumerate(self.valid):
            out.append(msg)
            if i % step == 0 and invalid:
                out.append(invalid.pop())
        return out + invalid


def midday_zone(now: datetime) -> str:
    """A fixed-offset zone in which `now` is about 13:00, far from the 21:00-08:00 quiet hours.

    The worker stamps actions with its own clock, so the test must not depend on the hour it
    runs at: in this zone no welcome mail is ever moved by quiet hours.
    """
    offset = (13 - now.astimezone(UTC).hour) % 24
    offset = offset - 24 if offset > 12 else offset
    return f"Etc/GMT{-offset:+d}"  # POSIX sign: Etc/GMT-5 is UTC+5


_ZONE = midday_zone(datetime.now(UTC))


def _event(eid: str, typ: str, at: datetime, identity: dict[str, str], **props: Any) -> bytes:
    return orjson.dumps(
        {
            "event_id": eid,
            "type": typ,
            "occurred_at": at.isoformat().replace("+00:00", "Z"),
            "identity": identity,
            "context": {"timezone": _ZONE},
            "properties": props,
        }
    )


def generate(customers: int = 240, *, max_event_bytes: int = 4096) -> Expected:
    """Four kinds of customer, each on one channel, plus every kind of bad input."""
    exp = Expected()
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)

    def move(cid: str, frm: str | None, to: str, eid: str, chans: tuple[str, ...] = ()) -> None:
        exp.transitions[(cid, frm, to, eid, chans)] += 1

    for i in range(customers):
        at = base + timedelta(seconds=i)
        group = i % 4
        events: list[tuple[str, bytes]] = []
        if group == 0:  # web: browses, signs up, buys
            cid, ident = f"C-{i}", {"customer_id": f"C-{i}"}
            consent = i % 8 != 4
            events = [
                (t.WEB, _event(f"w{i}-1", "page_view", at, ident, url="/")),
                (
                    t.WEB,
                    _event(
                        f"w{i}-2",
                        "product_view",
                        at + timedelta(minutes=1),
                        ident,
                        product_id="P-1",
                        category="mugs",
                    ),
                ),
                (
                    t.WEB,
                    _event(
                        f"w{i}-3",
                        "signup",
                        at + timedelta(minutes=2),
                        {**ident, "email": f"c{i}@example.com"},
                        consent={"email": consent, "sms": False},
                    ),
                ),
                (
                    t.WEB,
                    _event(
                        f"w{i}-4",
                        "order_placed",
                        at + timedelta(minutes=3),
                        ident,
                        order_id=f"O-{i}",
                        value=19.5,
                        currency="EUR",
                    ),
                ),
            ]
            move(cid, None, "awareness", f"w{i}-1")
            move(cid, "awareness", "consideration", f"w{i}-2")
            move(cid, "consideration", "purchase", f"w{i}-4", ("web",))
            # The first purchase starts onboarding: order_welcome is transactional (no opt-in).
            aid = action_id("lifecycle", "onboarding", cid, f"w{i}-4")
            exp.actions.add((aid, cid, "order_welcome", f"w{i}-4"))
            if consent:
                aid = action_id("lifecycle", "welcome", cid, f"w{i}-3")
                exp.actions.add((aid, cid, "welcome", f"w{i}-3"))
            else:
                exp.suppressed_consent += 1
        elif group == 1:  # anonymous web visitor who subscribes to the newsletter
            cid, ident = f"anon:ck-{i}", {"anonymous_id": f"ck-{i}"}
            events = [
                (t.WEB, _event(f"a{i}-1", "page_view", at, ident)),
                (t.WEB, _event(f"a{i}-2", "search", at + timedelta(minutes=1), ident, query="mug")),
                (
                    t.WEB,
                    _event(f"a{i}-3", "newsletter_subscribe", at + timedelta(minutes=2), ident),
                ),
            ]
            move(cid, None, "awareness", f"a{i}-1")
            move(cid, "awareness", "consideration", f"a{i}-2")
            aid = action_id("lifecycle", "welcome", cid, f"a{i}-3")
            exp.actions.add((aid, cid, "welcome", f"a{i}-3"))
        elif group == 2:  # email recipient, address written sloppily upstream
            cid, ident = f"email:e{i}@example.com", {"email": f"  E{i}@Example.com "}
            events = [
                (t.EMAIL, _event(f"e{i}-1", "email_delivered", at, ident, campaign_id="fall")),
                (
                    t.EMAIL,
                    _event(
                        f"e{i}-2",
                        "email_opened",
                        at + timedelta(minutes=1),
                        ident,
                        campaign_id="fall",
                    ),
                ),
                (
                    t.EMAIL,
                    _event(
                        f"e{i}-3",
                        "email_clicked",
                        at + timedelta(minutes=2),
                        ident,
                        campaign_id="fall",
                        url="/mugs",
                    ),
                ),
            ]
            move(cid, None, "awareness", f"e{i}-1")
            move(cid, "awareness", "consideration", f"e{i}-3")
        else:  # store visitor with a loyalty card
            cid, ident = f"loyalty:L-{i}", {"loyalty_id": f"L-{i}"}
            events = [
                (t.STORE, _event(f"s{i}-1", "store_visit", at, ident, store_id="S-1")),
                (
                    t.STORE,
                    _event(
                        f"s{i}-2",
                        "consultation",
                        at + timedelta(minutes=1),
                        ident,
                        store_id="S-1",
                        topic="mugs",
                    ),
                ),
                (
                    t.STORE,
                    _event(
                        f"s{i}-3",
                        "pos_purchase",
                        at + timedelta(minutes=2),
                        ident,
                        store_id="S-1",
                        order_id=f"POS-{i}",
                        value=40.0,
                    ),
                ),
            ]
            move(cid, None, "awareness", f"s{i}-1")
            move(cid, "awareness", "consideration", f"s{i}-2")
            move(cid, "consideration", "purchase", f"s{i}-3", ("store",))
            aid = action_id("lifecycle", "onboarding", cid, f"s{i}-3")
            exp.actions.add((aid, cid, "order_welcome", f"s{i}-3"))
        key = cid.encode()
        for topic, value in events:
            exp.valid.append((topic, key, value))
            exp.processed[topic.removeprefix("touchpoints.")] += 1
        if i % 5 == 0:  # the upstream retried: the same event again
            exp.valid.append((events[0][0], key, events[0][1]))
            exp.processed[events[0][0].removeprefix("touchpoints.")] += 1
            exp.duplicates += 1
    _bad_input(exp, base, max_event_bytes)
    return exp


def _bad_input(exp: Expected, base: datetime, max_event_bytes: int) -> None:
    ok_identity = {"anonymous_id": "ck-bad"}

    def add(n: int, kind: str, topic: str, value: Any) -> None:
        group = sum(1 for _, k in exp.invalid if k == kind)
        for j in range(n):
            v = value(j) if callable(value) else value
            exp.invalid.append(((topic, f"bad-{kind}-{group + j}".encode(), v), kind))

    add(20, "decode", t.WEB, lambda j: b"\xff\xfe invalid utf-8 " + bytes([j]))
    add(20, "decode", t.EMAIL, lambda j: b"{not json " + str(j).encode())
    add(20, "decode", t.STORE, b"[1, 2, 3]")
    add(10, "decode", t.WEB, None)
    add(10, "decode", t.WEB, b"[" * 2000 + b"]" * 2000)  # deeper than orjson allows
    add(5, "decode", t.CONTROL, b"erase everyone")
    add(20, "validation", t.WEB, lambda j: _event(f"v{j}", "page_view", base, {}))
    add(
        20,
        "validation",
        t.WEB,
        lambda j: _event(f"vp{j}", "product_view", base, ok_identity, category="x"),
    )
    add(20, "unknown_type", t.STORE, lambda j: _event(f"u{j}", "teleport", base, ok_identity))
    add(
        10,
        "too_large",
        t.WEB,
        lambda j: _event(f"l{j}", "page_view", base, ok_identity, url="x" * max_event_bytes),
    )
    add(
        20,
        "future_timestamp",
        t.EMAIL,
        lambda j: _event(
            f"f{j}",
            "email_opened",
            datetime.now(UTC) + timedelta(hours=1),
            ok_identity,
            campaign_id="c",
        ),
    )
    add(
        20,
        "channel_mismatch",
        t.WEB,
        lambda j: _event(f"m{j}", "email_opened", base, ok_identity, campaign_id="c"),
    )
