"""Where ingest sends a valid event, and what the link agent passes on (stream/agents/ingest.py,
stream/agents/identity.py), on stand-ins for the topics and the graph table."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from processor import topics as t
from processor.metrics import Metrics
from processor.settings import Settings
from processor.stream.agents.envelope import unpack
from processor.stream.agents.fences import Fences
from processor.stream.agents.identity import handle_link
from processor.stream.agents.ingest import handle_inbound
from processor.stream.agents.linked import Linked
from processor.stream.commit.writes import Coalesced

Sent = tuple[str, bytes | None, bytes]


class Table:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)


def _runtime(log: list[Sent]) -> Any:
    graph = Table()
    graph_writes = Coalesced(graph)
    return SimpleNamespace(
        settings=Settings(),
        metrics=Metrics.create(),
        graph=graph,
        graph_writes=graph_writes,
        graph_fences=Fences(graph_writes, 3600),
        linked=Linked(),
    )


def _message(identity: dict[str, str]) -> Any:
    event = {
        "event_id": "e-1",
        "type": "login",
        "channel": "web",
        "occurred_at": datetime.now(UTC).isoformat(),
        "identity": identity,
        "context": {"timezone": "Europe/Berlin", "locale": "de-DE"},
        "properties": {},
    }
    return SimpleNamespace(
        topic="touchpoints.web", partition=2, offset=7, key=b"k", timestamp=None,
        value=orjson.dumps(event),
    )  # fmt: skip


class Checkpoint:
    """What ingest and the link agent hand a checkpoint, logged under short topic names."""

    def __init__(self, log: list[Sent]) -> None:
        self.log = log

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.log.append((_SHORT[topic], key, value))

    def check(self, topic: str, key: bytes | None, value: bytes | None, what: str) -> None:
        pass  # nothing here comes near a topic's limit

    def count(self, counter: Any, *labels: str, amount: float = 1) -> None:
        pass  # the metrics are not what these tests are about


_SHORT = {
    t.CUSTOMER_EVENTS: "customer_events",
    t.IDENTITY_LINKS: "identity_links",
    t.IDENTITY_ROUTES: "identity_routes",
    t.DEADLETTER: "deadletter",
}


def _ingest(rt: Any, log: list[Sent], message: Any) -> None:
    handle_inbound(rt, Checkpoint(log), message)  # type: ignore[arg-type]


def _link(rt: Any, log: list[Sent], value: bytes) -> None:
    handle_link(rt, Checkpoint(log), b"", value, 0)  # type: ignore[arg-type]


def _routed(identity: dict[str, str]) -> list[tuple[str, bytes | None, str]]:
    """(topic, key, envelope kind) of everything ingest sends for one event of `identity`."""
    log: list[Sent] = []
    _ingest(_runtime(log), log, _message(identity))
    return [(topic, key, unpack(value)[0]) for topic, key, value in log]


@pytest.mark.parametrize(
    ("identity", "want"),
    [
        # A customer id is its own person: straight there, and the other identifiers' link
        # (only the identity) to the graph.
        (
            {"customer_id": "C-1", "anonymous_id": "ck-1"},
            [("customer_events", b"C-1", "event"), ("identity_links", b"c:C-1", "link")],
        ),
        ({"customer_id": "C-1"}, [("customer_events", b"C-1", "event")]),
        # Several identifiers and no customer id: the link agent names the person.
        (
            {"email": "ana@example.com", "anonymous_id": "ck-1"},
            [("identity_links", b"e:ana@example.com", "event")],
        ),
        ({"anonymous_id": "ck-1"}, [("identity_routes", b"a:ck-1", "event")]),
    ],
)
def test_ingest_sends_an_event_with_a_customer_id_to_that_customer(
    identity: dict[str, str], want: list[tuple[str, bytes, str]]
) -> None:
    assert _routed(identity) == want


def test_a_link_updates_the_graph_and_passes_no_event_on() -> None:
    log: list[Sent] = []
    rt = _runtime(log)
    _ingest(rt, log, _message({"customer_id": "C-1", "anonymous_id": "ck-1"}))
    (_, _, link), = [s for s in log if s[0] == "identity_links"]  # fmt: skip
    assert set(unpack(link)[2]) == {"identity", "occurred_at"}
    log.clear()
    _link(rt, log, link)
    # The cookie now belongs to C-1: its route partition learns it; the event is not sent again.
    assert [(topic, key) for topic, key, _ in log] == [("identity_routes", b"a:ck-1")]
    linked_at = unpack(link)[2]["occurred_at"]
    alias = {"node": "a:ck-1", "old": "anon:ck-1", "new": "C-1", "at": linked_at}
    assert unpack(log[0][2])[2] == alias
    assert orjson.loads(rt.graph_writes.read(0, b"a:ck-1") or b"null")["c"] == "C-1"
    # The same link again is known to be in the graph: nothing to read, write or send.
    assert ("c:C-1", "a:ck-1") in rt.linked
    log.clear()
    pending = rt.graph_writes.pending
    _link(rt, log, link)
    assert (log, rt.graph_writes.pending) == ([], pending)
    # The same identity as an event of its own (no customer id in it) would be passed on.
    event = _message({"email": "ana@example.com", "anonymous_id": "ck-1"})
    log.clear()
    _ingest(rt, log, event)
    (_, _, routed), = log  # fmt: skip
    log.clear()
    _link(rt, log, routed)
    assert ("customer_events", b"C-1") in [(topic, key) for topic, key, _ in log]


def test_an_envelope_s_kind_is_read_without_parsing_it() -> None:
    from processor.stream.agents.envelope import Kind, Source, kind_of, pack, unpack

    src = Source("touchpoints.web", 3, 42, b"ck-1", 1_700_000_000_000)
    for kind in Kind:
        raw = pack(kind, {"a": 1}, "web", src)
        assert kind_of(raw) is kind
        assert unpack(raw) == (kind, "web", {"a": 1}, src)
    with pytest.raises(ValueError, match="not an internal envelope"):
        kind_of(b'{"channel":"web"}')
