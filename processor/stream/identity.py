"""The identity agents: the link agent keeps the graph, the route agents keep the aliases.

Why this is correct when links and events race (a `login` linking a cookie to an account on
touchpoints.web, and a `cart_add` of the same cookie on another partition):

1. Only the link agent changes the graph, and it sees every link and erase command in one order
   (one partition). The grouping it computes depends on the set of links only
   (processor/identity/graph.py), so any order of arrival ends in the same persons and keys.
   An event with a customer id belongs to that customer whatever the graph says, so it goes to
   them straight from ingest and only its identity (a `link`) comes here; it may then reach
   its person before the merges its link causes, which point 3 allows for.
2. When a link moves an identifier to another person, the link agent tells the identifier's
   route partition (an `alias` message). The route agent records the alias and only then sends
   a `merge` to the old key's customer partition. Every event of that identifier that was
   routed before the alias was produced to the old key *before* the merge (same producer, same
   partition, so Kafka keeps the order); every event routed after it goes to the new key.
3. The journey agent, on `merge`, hands the old key's state to the new key (`absorb`) and leaves
   a forwarding marker; an event that still reaches the old key (a timer, a replay) follows the
   marker. Absorbing is a fold that does not depend on what arrived first (merge.fold), so the
   person ends with the same state whichever way the race went.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from processor.events import ControlCommand, Identity
from processor.identity import graph
from processor.stream.app import Runtime
from processor.stream.envelope import Source, pack, unpack
from processor.stream.fences import count_dropped
from processor.stream.writes import send

IDENTITY = "identity"


def _lookup(rt: Runtime) -> graph.Lookup:
    def get(node: str) -> graph.NodeRecord | None:
        raw = rt.graph_writes.get(node.encode())
        return None if raw is None else graph.NodeRecord.from_json(orjson.loads(raw))

    return get


async def _apply(rt: Runtime, change: graph.Change, src: Source, at: str) -> None:
    """Store the graph's change and tell each moved identifier's route partition; `at` is when
    the event or erase command that changed it happened (a merge's time)."""
    for node, record in change.records.items():
        if record is None:
            rt.graph_writes.pop(node.encode())
        else:
            rt.graph_writes[node.encode()] = orjson.dumps(record.to_json())
    for node, (old, new) in sorted(change.moved.items()):
        alias: dict[str, Any] = {"node": node, "old": old, "new": new, "at": at}
        await send(rt.identity_routes, node.encode(), pack("alias", alias, IDENTITY, src))
    m = rt.metrics
    m.identity_links.inc(change.links_added)
    if change.conflict:
        m.identity_conflicts.inc()


async def handle_link(rt: Runtime, value: bytes, partition: int) -> None:
    """A linking event or an erase command: update the graph, then pass it on by person. A
    `link` (the identity of an event with a customer id, whose event went to its person from
    ingest) only updates the graph."""
    kind, label, payload, src = unpack(value)
    now = datetime.now(UTC)
    fences = rt.graph_fences
    fenced = fences.live(partition, now)
    if kind == "control":
        command = ControlCommand.model_validate(payload)  # validated at ingest
        named = graph.KIND_PREFIX[command.identifier[0]] + command.identifier[1]
        change = graph.erase(_lookup(rt), named)
        requested = command.requested_at
        person = "c:" + change.canonical if graph.is_customer_key(change.canonical) else named
        fences.add(partition, sorted({person, named, *change.moved}), requested, now)
        await _apply(rt, change, src, str(payload["requested_at"]))
    else:
        nodes = graph.nodes_of(Identity.model_validate(payload["identity"]))
        occurred = str(payload["occurred_at"])
        if fenced and fences.blocks(partition, nodes, datetime.fromisoformat(occurred)):
            # It happened before its person was erased: linking it would bring them back.
            if kind == "event":  # (a link's event meets the journey agent's fence)
                count_dropped(rt.metrics, IDENTITY, label)
            return
        change = graph.link(_lookup(rt), nodes)
        await _apply(rt, change, src, occurred)
        if kind == "link":
            return
    await send(rt.customer_events, change.canonical.encode(), value)


async def handle_route(rt: Runtime, key: bytes, value: bytes) -> None:
    """An event of one identifier, or an alias update for it."""
    kind, _, payload, src = unpack(value)
    node = key.decode()
    if kind != "alias":
        alias = rt.alias_writes.get(key)
        target = alias if alias is not None else graph.key_of(node).encode()
        await send(rt.customer_events, target, value)
        return
    old, new = str(payload["old"]), payload["new"]
    own = graph.key_of(node)
    if new is None:
        # Erased: forget the alias, and wipe whatever the identifier's own key still holds.
        rt.alias_writes.pop(key)
        # (An alias written before aliases carried `at` names the erasure's `requested_at`.)
        erased = {"requested_at": payload.get("at") or payload["requested_at"]}
        await send(rt.customer_events, own.encode(), pack("purge", erased, IDENTITY, src))
        return
    if new == own:
        rt.alias_writes.pop(key)
    else:
        rt.alias_writes[key] = str(new).encode()
    if old != new and not graph.is_customer_key(old):
        # An anonymous person turned out to be `new`: hand their profile over. A customer id is
        # never merged into another: when a conflict moves an identifier from one customer to
        # another (the smaller id), only the identifier's future events change hands.
        merge: dict[str, Any] = {"into": new, "at": payload.get("at")}
        await send(rt.customer_events, old.encode(), pack("merge", merge, IDENTITY, src))
