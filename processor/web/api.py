"""The customer API: GET /customers/{id}, behind a bearer token, answered by the owning worker."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp.web import Response
from aiokafka.errors import KafkaError
from faust.web import View
from pydantic import BaseModel, ValidationError
from yarl import URL

from processor.events import Identity
from processor.identity import graph
from processor.identity.keys import PREFIX
from processor.journey.state import CustomerState
from processor.stream.agents.held import held_at
from processor.stream.app import Runtime
from processor.stream.extensions import internals
from processor.web.customer import (
    KINDS,
    PREFIXED_KINDS,
    IdentifierKind,
    Problem,
    customer_from_state,
)
from processor.web.openapi import document

log = logging.getLogger(__name__)

#: (identifier kind, value) -> the identifier's node in the identity graph (`c:C-1`,
#: `e:ana@example.com`). Which person the node belongs to is then looked up in the alias table.
Resolver = Callable[[IdentifierKind, str], str]

#: Set on a question one worker forwards to another; its value says which question
#: (`ASK_ALIAS`, `ASK_KEY`), and the worker asked answers from its own partitions only.
FORWARDED = "X-Touchpoint-Forwarded"
ANSWERED_BY = "X-Touchpoint-Worker"
_FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=10)
_CHALLENGE = 'Bearer realm="touchpoint"'
#: Forwarding markers followed at most, one per merge a person went through.
_MAX_HOPS = 8


def resolve(kind: IdentifierKind, value: str) -> str:
    """The graph node of one identifier, normalised as on events (emails NFC-normalised,
    trimmed and case-folded)."""
    return graph.nodes_of(Identity.model_validate({kind: value}))[0]


def parse_identifier(raw: str, kind: str | None) -> tuple[IdentifierKind, str]:
    """The path's identifier: `?kind=` names its kind, else a key prefix does, else customer_id."""
    if kind is not None:
        for known in KINDS:
            if kind == known:
                return known, raw
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    for prefixed in PREFIXED_KINDS:
        if raw.startswith(PREFIX[prefixed]):
            return prefixed, raw.removeprefix(PREFIX[prefixed])
    return "customer_id", raw


def check_bearer(token: str | None, authorization: str | None) -> tuple[int, Problem] | None:
    """None when the request may pass, else the status and problem to answer with."""
    if token is None:
        return 404, Problem(
            error="api_disabled",
            detail="the customer API is off: set TOUCHPOINT_API_TOKEN on the workers to enable it",
        )
    scheme, _, given = (authorization or "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return 401, Problem(
            error="unauthorized", detail="send `Authorization: Bearer <TOUCHPOINT_API_TOKEN>`"
        )
    # Constant time: the comparison must not reveal how much of a guess was right.
    if not hmac.compare_digest(given.encode(), token.encode()):
        return 403, Problem(error="forbidden", detail="the bearer token is not valid")
    return None


def _json(model: BaseModel, status: int, **headers: str) -> Response:
    return Response(
        body=model.model_dump_json().encode(),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", **headers},
    )


def _problem(status: int, error: str, detail: str) -> Response:
    extra = {"WWW-Authenticate": _CHALLENGE} if status == 401 else {}
    if status == 503:
        extra["Retry-After"] = "1"
    return _json(Problem(error=error, detail=detail), status, **extra)


def _same_node(a: URL, b: URL) -> bool:
    return (a.host, a.port) == (b.host, b.port)


def _settled(rt: Runtime) -> bool:
    return bool(rt.app.tables.actives_ready) and not rt.app.rebalancing


class _Unavailable(Exception):
    """The answer cannot be given now (a rebalance, an absent owner): 503, retry."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error, self.detail = error, detail


def _owner(rt: Runtime, table: Any, key: str) -> URL | None:
    """The worker that holds `key` in `table`, or None when that is this worker.

    Raises `_Unavailable` while partitions move or nobody owns the key's partition yet."""
    if not _settled(rt):
        raise _Unavailable("rebalancing", "partitions are moving; retry shortly")
    try:
        owner = rt.app.router.key_store(table.name, key.encode())
    except KeyError:
        raise _Unavailable("no_owner", "no worker owns this customer's partition yet") from None
    return None if _same_node(owner, URL(str(rt.app.conf.canonical_url))) else owner


async def _know_partitions(rt: Runtime) -> None:
    """Have the producer's metadata hold the tables' changelogs before `_owner` is asked.

    Faust's router hashes a key with the producer's metadata, which on Apache Kafka covers only
    the topics the producer has asked about: before a worker wrote to a table, `key_store`
    failed with a TypeError (a 500). Returns at once when the topics are known."""
    producer = internals.aiokafka_producer(rt.app)  # the router's producer alike
    try:
        async with asyncio.timeout(5):
            for table in (rt.table, rt.aliases):
                await producer.partitions_for(table.changelog_topic.get_topic_name())
    except (KafkaError, TimeoutError):
        raise _Unavailable("no_owner", "the partitions are not known yet; retry shortly") from None


#: The forwarded questions, as values of the `FORWARDED` header. A worker asked one answers it
#: from its own partitions only and never forwards it again.
ASK_ALIAS = "alias"  # path: an identifier's graph node; answer: {"key": its person's key}
ASK_KEY = "key"  # path: a customer key; answer: the customer, 404, or {"moved": key}
MOVED = "X-Touchpoint-Moved"


def _alias_here(rt: Runtime, node: str) -> str:
    """The key of the person `node` belongs to, from this worker's part of the alias table."""
    alias = rt.aliases.get(node.encode())
    return graph.key_of(node) if alias is None else bytes(alias).decode()


async def _ask(rt: Runtime, owner: URL, question: str, subject: str, auth: str) -> Response:
    """Ask the owning worker one forwarded question about `subject` (a node or a key)."""
    path = "/customers/" + quote(subject, safe="")
    url = URL.build(
        scheme=owner.scheme or "http",
        host=owner.host or "",
        port=owner.port,
        path=path,
        encoded=True,
    )
    headers = {"Authorization": auth, FORWARDED: question}
    try:
        async with rt.app.http_client.get(url, headers=headers, timeout=_FORWARD_TIMEOUT) as r:
            body = await r.read()
            kept = (ANSWERED_BY, MOVED, "Retry-After", "WWW-Authenticate")
            passed = {name: r.headers[name] for name in kept if name in r.headers}
            return Response(
                body=body,
                status=r.status,
                content_type=r.content_type,
                headers={"Cache-Control": "no-store", **passed},
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("customer API: the owning worker %s did not answer: %s", owner, exc)
        raise _Unavailable(
            "owner_unavailable", "the worker that owns this customer is away"
        ) from None


async def _person_key(rt: Runtime, node: str, auth: str) -> str | Response:
    """The key of the person an identifier belongs to now: for a customer id, itself; for any
    other identifier, what the route agents' alias table says (the identifier's own key when
    it was never linked to another person). A Response when the alias owner answered an error."""
    if graph.is_anchor(node):
        return graph.key_of(node)
    owner = _owner(rt, rt.aliases, node)
    if owner is None:
        return _alias_here(rt, node)
    answer = await _ask(rt, owner, ASK_ALIAS, node, auth)
    if answer.status != 200 or answer.body is None:
        return answer
    assert isinstance(answer.body, bytes)
    return str(orjson.loads(answer.body)["key"])


async def _customer(rt: Runtime, key: str, auth: str) -> Response:
    """The person at `key`, following merge markers to wherever they lead (any worker)."""
    for _ in range(_MAX_HOPS):
        owner = _owner(rt, rt.table, key)
        if owner is None:
            held = held_at(rt.table.get(key.encode()))
            if isinstance(held, str):
                key = held
                continue
            return _state_answer(rt, held)
        answer = await _ask(rt, owner, ASK_KEY, key, auth)
        if MOVED not in answer.headers:
            return answer
        assert isinstance(answer.body, bytes)
        key = str(orjson.loads(answer.body)["moved"])
    raise _Unavailable("rebalancing", "a merge is still moving this customer")


def _state_answer(rt: Runtime, state: CustomerState | None) -> Response:
    if state is None:
        return _problem(404, "not_found", "no journey state for this identifier")
    # Which worker answered, for operators tracing a forwarded request.
    answered = {ANSWERED_BY: str(rt.app.conf.canonical_url)}
    return _json(customer_from_state(state, rt.journey.journey), 200, **answered)


def _internal(answer: dict[str, str], **headers: str) -> Response:
    body = orjson.dumps(answer)
    headers["Cache-Control"] = "no-store"
    return Response(body=body, content_type="application/json", headers=headers)


def _answer_forwarded(rt: Runtime, question: str, subject: str) -> Response:
    """Answer another worker's question from this worker's own partitions, never forwarding."""
    if question == ASK_ALIAS:
        if not graph.is_anchor(subject) and graph.KEY_PREFIX.get(subject[:2]) is not None:
            if _owner(rt, rt.aliases, subject) is not None:
                raise _Unavailable("rebalancing", "ownership is moving; retry shortly")
            return _internal({"key": _alias_here(rt, subject)})
        return _problem(400, "bad_identifier", "not an identifier node")
    if _owner(rt, rt.table, subject) is not None:
        raise _Unavailable("rebalancing", "ownership is moving; retry shortly")
    held = held_at(rt.table.get(subject.encode()))
    if isinstance(held, str):
        return _internal({"moved": held}, **{MOVED: "1"})
    return _state_answer(rt, held)


def install(rt: Runtime, resolver: Resolver = resolve) -> None:
    """Register `/customers/{id}` and `/openapi.json` on the worker's web server."""
    app = rt.app
    secret = rt.settings.api_token
    # An empty value (compose's `${TOUCHPOINT_API_TOKEN:-}`) means unset: the API stays off.
    token = (secret.get_secret_value() if secret is not None else "") or None
    spec = document()

    @app.page("/openapi.json")
    async def openapi(web: Any, request: Any) -> Any:
        # The description only: open like /health, it carries no personal data.
        return web.json(spec)

    @app.page("/customers/{id}")
    class CustomerView(View):
        async def get(self, request: Any, id: str) -> Response:
            denied = check_bearer(token, request.headers.get("Authorization"))
            if denied is not None:
                status, problem = denied
                return _problem(status, problem.error, problem.detail)
            auth = request.headers.get("Authorization", "")
            question = request.headers.get(FORWARDED)
            try:
                await _know_partitions(rt)
                if question in (ASK_ALIAS, ASK_KEY):
                    return _answer_forwarded(rt, question, id)
                try:
                    kind, value = parse_identifier(id, request.query.get("kind"))
                    node = resolver(kind, value)
                except ValidationError:
                    return _problem(400, "bad_identifier", "not a valid identifier of that kind")
                except ValueError as exc:
                    return _problem(400, "bad_identifier", str(exc))
                key = await _person_key(rt, node, auth)
                if isinstance(key, Response):
                    return key
                return await _customer(rt, key, auth)
            except _Unavailable as exc:
                return _problem(503, exc.error, exc.detail)
