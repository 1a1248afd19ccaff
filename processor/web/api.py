"""The customer API: GET /customers/{id}, behind a bearer token, answered by the owning worker."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.web import Response
from faust.web import View
from pydantic import BaseModel, ValidationError
from yarl import URL

from processor.events import Identity
from processor.identity.keys import PREFIX, canonical_key
from processor.stream.app import Runtime
from processor.stream.journey import held_at
from processor.web.customer import (
    KINDS,
    PREFIXED_KINDS,
    IdentifierKind,
    Problem,
    customer_from_state,
)
from processor.web.openapi import document

log = logging.getLogger(__name__)

#: (identifier kind, value) -> canonical customer key. Swappable: identity resolution will
#: replace the default with a lookup of linked identifiers.
Resolver = Callable[[IdentifierKind, str], str]

#: Set on a request one worker forwards to the owner; the owner never forwards it again.
FORWARDED = "X-Touchpoint-Forwarded"
ANSWERED_BY = "X-Touchpoint-Worker"
_FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=10)
_CHALLENGE = 'Bearer realm="touchpoint"'
#: Forwarding markers followed at most, one per merge a person went through.
_MAX_HOPS = 8


def resolve(kind: IdentifierKind, value: str) -> str:
    """The canonical key of one identifier, by the rules of `processor.identity.keys`."""
    return canonical_key(Identity.model_validate({kind: value}))


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


async def _forward(rt: Runtime, owner: URL, request: Any, key: str | None) -> Response:
    """Ask the owning worker; for the request's own identifier, or for `key` (a merge target)."""
    url = request.url.with_scheme(owner.scheme or "http").with_host(owner.host or "")
    url = url.with_port(owner.port)
    if key is not None:
        url = url.with_path(f"/customers/{key}").with_query(None)
    headers = {"Authorization": request.headers.get("Authorization", ""), FORWARDED: "1"}
    try:
        async with rt.app.http_client.get(url, headers=headers, timeout=_FORWARD_TIMEOUT) as r:
            body = await r.read()
            return Response(
                body=body,
                status=r.status,
                content_type=r.content_type,
                headers={"Cache-Control": "no-store", ANSWERED_BY: r.headers.get(ANSWERED_BY, "")},
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("customer API: the owning worker %s did not answer: %s", owner, exc)
        return _problem(503, "owner_unavailable", "the worker that owns this customer is away")


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
            try:
                kind, value = parse_identifier(id, request.query.get("kind"))
                key = resolver(kind, value)
            except ValidationError:
                return _problem(400, "bad_identifier", "not a valid identifier of that kind")
            except ValueError as exc:
                return _problem(400, "bad_identifier", str(exc))
            asked = key
            # A person merged into another leaves a marker at their old key: follow it (a
            # marker may point to a key another worker owns; chains are short and transient).
            for _ in range(_MAX_HOPS):
                if not _settled(rt):
                    return _problem(503, "rebalancing", "partitions are moving; retry shortly")
                try:
                    owner = app.router.key_store(rt.table.name, key.encode())
                except KeyError:
                    return _problem(503, "no_owner", "no worker owns this customer's partition yet")
                if not _same_node(owner, URL(str(app.conf.canonical_url))):
                    if request.headers.get(FORWARDED):
                        return _problem(503, "rebalancing", "ownership is moving; retry shortly")
                    return await _forward(rt, owner, request, None if key == asked else key)
                held = held_at(rt.table.get(key.encode()))
                if not isinstance(held, str):
                    break
                key = held
            else:
                return _problem(503, "rebalancing", "a merge is still moving this customer")
            state = held
            if state is None:
                return _problem(404, "not_found", "no journey state for this identifier")
            # Which worker answered, for operators tracing a forwarded request.
            answered = {ANSWERED_BY: str(app.conf.canonical_url)}
            return _json(customer_from_state(state, rt.journey.journey), 200, **answered)
