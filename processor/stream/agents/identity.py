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

from processor import topics as t
from processor.events import ControlCommand
from processor.identity import graph
from processor.stream.agents.envelope import Kind, Source, kind_of, pack, unpack
from processor.stream.agents.fences import count_dropped
from processor.stream.app import Runtime
from processor.stream.commit.checkpoint import Checkpoint
from processor.stream.commit.writes import Partition

IDENTITY = "identity"


def _lookup(graph_table: Partition) -> graph.Lookup:
    def get(node: str) -> graph.NodeRecord | None:
        raw = graph_table.get(node.encode())
        return None if raw is None else graph.NodeRecord.from_json(orjson.loads(raw))

    return get


def _apply(
    rt: Runtime, cp: Checkpoint, graph_table: Partition, change: graph.Change, src: Source,
    at: str,
) -> None:  # fmt: skip
    """Store the graph's change and tell each moved identifier's route partition; `at` is when
    the event or erase command that changed it happened (a merge's time)."""
    for node, record in change.records.items():
        if record is None:
            graph_table.pop(node.encode())
        else:
            graph_table[node.encode()] = orjson.dumps(record.to_json())
    for node, (old, new) in sorted(change.moved.items()):
        alias: dict[str, Any] = {"node": node, "old": old, "new": new, "at": at}
        cp.send(t.IDENTITY_ROUTES, node.encode(), pack(Kind.alias, alias, IDENTITY, src))
    m = rt.metrics
    m.identity_links.inc(change.links_added)
    if change.conflict:
        m.identity_conflicts.inc()


def handle_link(rt: Runtime, cp: Checkpoint, key: bytes, value: bytes, partition: int) -> None:
    """A linking event or an erase command: update the graph, then pass it on by person. A
    `link` (the identity of an event with a customer id, whose event went to its person from
    ingest) only updates the graph. (The key, the first identifier, is in the value too.)"""
    kind, label, payload, src = unpack(value)
    now = datetime.now(UTC)
    fences = rt.graph_fences
    fenced = fences.live(partition, now)
    graph_table = rt.graph_writes.at(partition)
    if kind == Kind.control:
        command = ControlCommand.model_validate(payload)  # validated at ingest
        named = graph.KIND_PREFIX[command.identifier[0]] + command.identifier[1]
        change = graph.erase(_lookup(graph_table), named)
        rt.linked.forget()  # the erased person's links are gone
        requested = command.requested_at
        person = "c:" + change.canonical if graph.is_customer_key(change.canonical) else named
        fences.add(partition, sorted({person, named, *change.moved}), requested, now)
        _apply(rt, cp, graph_table, change, src, str(payload["requested_at"]))
    else:
        nodes = graph.nodes_of_json(payload["identity"])  # validated at ingest
        occurred = str(payload["occurred_at"])
        if fenced and fences.blocks(partition, nodes, datetime.fromisoformat(occurred)):
            # It happened before its person was erased: linking it would bring them back.
            if kind == Kind.event:  # (a link's event meets the journey agent's fence)
                count_dropped(rt.metrics, IDENTITY, label)
            return
        if kind == Kind.link and nodes in rt.linked:
            return  # a customer's identifiers, linked already (stream/agents/linked.py)
        change = graph.link(_lookup(graph_table), nodes)
        _apply(rt, cp, graph_table, change, src, occurred)
        if kind == Kind.link:
            rt.linked.add(nodes)
            return
    cp.send(t.CUSTOMER_EVENTS, change.canonical.encode(), value)


def handle_route(rt: Runtime, cp: Checkpoint, key: bytes, value: bytes, partition: int) -> None:
    """An event of one identifier (passed on to its person as it is, unparsed), or an alias
    update for it."""
    node = key.decode()
    aliases = rt.alias_writes.at(partition)
    if kind_of(value) is not Kind.alias:
        alias = aliases.get(key)
        target = alias if alias is not None else graph.key_of(node).encode()
        cp.send(t.CUSTOMER_EVENTS, target, value)
        return
    _, _, payload, src = unpack(value)
    old, new = str(payload["old"]), payload["new"]
    own = graph.key_of(node)
    if new is None:
        # Erased: forget the alias, and wipe whatever the identifier's own key still holds.
        aliases.pop(key)
        # (An alias written before aliases carried `at` names the erasure's `requested_at`.)
        erased = {"requested_at": payload.get("at") or payload["requested_at"]}
        cp.send(t.CUSTOMER_EVENTS, own.encode(), pack(Kind.purge, erased, IDENTITY, src))
        return
    if new == own:
        aliases.pop(key)
    else:
        aliases[key] = str(new).encode()
    if old != new and not graph.is_customer_key(old):
        # An anonymous person turned out to be `new`: hand their profile over. A customer id is
        # never merged into another: when a conflict moves an identifier from one customer to
        # another (the smaller id), only the identifier's future events change hands.
        merge: dict[str, Any] = {"into": new, "at": payload.get("at")}
        cp.send(t.CUSTOMER_EVENTS, old.encode(), pack(Kind.merge, merge, IDENTITY, src))
