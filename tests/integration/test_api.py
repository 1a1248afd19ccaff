"""The customer API on two real workers: any worker answers for any customer, behind a token."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import murmur2

from processor import topics as t
from processor.web.openapi import document
from tests.support.kafka import produce
from tests.support.openapi import check_answer
from tests.support.worker import WorkerProcess, eventually, metric_values

pytestmark = pytest.mark.broker

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _get(worker: WorkerProcess, path: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(worker.url(path), headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as r:
            return r.status, r.headers, orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, orjson.loads(e.read())


def _event(eid: str, typ: str, identity: dict[str, str], **props: object) -> bytes:
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    value = {"event_id": eid, "type": typ, "occurred_at": at, "identity": identity,
             "context": {"timezone": "Europe/Berlin"}, "properties": props}  # fmt: skip
    return orjson.dumps(value)


def _traffic() -> tuple[list[tuple[str, bytes | None, bytes | None]], dict[str, str]]:
    """Sixteen people of four kinds; returns the messages and canonical key -> expected stage."""
    msgs: list[tuple[str, bytes | None, bytes | None]] = []
    stages: dict[str, str] = {}
    for i in range(4):
        cid = f"C-{i}"
        msgs.append((t.WEB, cid.encode(), _event(f"c{i}-1", "page_view", {"customer_id": cid})))
        msgs.append((t.WEB, cid.encode(), _event(f"c{i}-2", "signup", {"customer_id": cid},
                                                 consent={"email": True})))  # fmt: skip
        msgs.append((t.WEB, cid.encode(), _event(f"c{i}-3", "cart_add", {"customer_id": cid},
                                                 product_id="P-1", price=9.5)))  # fmt: skip
        stages[cid] = "consideration"
        email = f"e{i}@example.com"
        msgs.append((t.EMAIL, None, _event(f"e{i}", "email_delivered", {"email": email},
                                           campaign_id="fall")))  # fmt: skip
        stages[f"email:{email}"] = "awareness"
        msgs.append((t.STORE, None, _event(f"l{i}", "store_visit", {"loyalty_id": f"L-{i}"},
                                           store_id="S-1")))  # fmt: skip
        stages[f"loyalty:L-{i}"] = "awareness"
        msgs.append((t.WEB, None, _event(f"a{i}", "page_view", {"anonymous_id": f"ck-{i}"})))
        stages[f"anon:ck-{i}"] = "awareness"
    return msgs, stages


def _summed(workers: list[WorkerProcess], name: str) -> float:
    """A metric summed over its series and over workers, as a dashboard sums it."""
    return sum(sum(metric_values(w.metrics(), name).values()) for w in workers)


def _processed(workers: list[WorkerProcess]) -> float:
    return sum(
        sum(metric_values(w.metrics(), "touchpoint_events_processed_total").values())
        for w in workers
    )


def test_any_worker_answers_for_any_customer(topics_ready: str, tmp_path: Path) -> None:
    env = {"TOUCHPOINT_API_TOKEN": TOKEN}
    w1 = WorkerProcess(topics_ready, tmp_path / "w1", **env)
    w2 = WorkerProcess(topics_ready, tmp_path / "w2", **env)
    with w1, w2:
        workers = [w1, w2]
        for w in workers:  # both in the group and settled after the second one joined
            deadline = time.monotonic() + 90
            while _get(w, "/ready")[0] != 200:
                assert time.monotonic() < deadline, w.log_tail()
                time.sleep(0.25)
        msgs, stages = _traffic()
        asyncio.run(produce(topics_ready, msgs))
        deadline = time.monotonic() + 60
        while _processed(workers) < len(msgs):
            assert time.monotonic() < deadline, w1.log_tail() + w2.log_tail()
            time.sleep(0.25)

        answered_by: dict[int, set[str]] = {w1.web_port: set(), w2.web_port: set()}
        for key, stage in stages.items():
            bodies = []
            for w in workers:
                status, headers, body = _get(w, f"/customers/{urllib.parse.quote(key)}", AUTH)
                assert status == 200, (key, body)
                assert headers["Content-Type"].startswith("application/json")
                assert headers["Cache-Control"] == "no-store"
                check_answer("/customers/{id}", 200, "application/json", body)
                answered_by[w.web_port].add(headers["X-Touchpoint-Worker"])
                bodies.append(body)
            assert bodies[0] == bodies[1]
            assert bodies[0]["customer_id"] == key
            assert bodies[0]["stage"] == stage
            assert bodies[0]["stage_history"][-1]["stage"] == stage
        # Each worker answered some customers itself and forwarded the others to the owner.
        for port, owners in answered_by.items():
            assert len(owners) == 2, (port, owners)

        c0 = _get(w1, "/customers/C-0", AUTH)[2]
        assert c0["consent"]["email"] is True
        assert [p["name"] for p in c0["pending_timers"]] == ["wait:abandoned_cart"]
        assert {"kind": "customer_id", "value": "C-0"} in c0["linked_identifiers"]
        assert [a["step"] for a in c0["recent_actions"]] == ["welcome"]

        # A plain identifier with its kind: emails match after trimming and case-folding.
        quoted = urllib.parse.quote("  E1@Example.COM ")
        status, _, by_email = _get(w2, f"/customers/{quoted}?kind=email", AUTH)
        assert (status, by_email["customer_id"]) == (200, "email:e1@example.com")
        status, _, by_loyalty = _get(w1, "/customers/L-2?kind=loyalty_id", AUTH)
        assert (status, by_loyalty["customer_id"]) == (200, "loyalty:L-2")

        for path, headers, want, error in [
            ("/customers/C-0", {}, 401, "unauthorized"),
            ("/customers/C-0", {"Authorization": f"Basic {TOKEN}"}, 401, "unauthorized"),
            ("/customers/C-0", {"Authorization": "Bearer"}, 401, "unauthorized"),
            ("/customers/C-0", {"Authorization": "Bearer nope"}, 403, "forbidden"),
            ("/customers/C-404", AUTH, 404, "not_found"),
            ("/customers/x?kind=phone", AUTH, 400, "bad_identifier"),
        ]:
            for w in workers:
                status, got_headers, body = _get(w, path, headers)
                assert (status, body["error"]) == (want, error), (path, headers, body)
                check_answer("/customers/{id}", status, "application/json", body)
                if status == 401:
                    assert got_headers["WWW-Authenticate"] == 'Bearer realm="touchpoint"'

        # Open and free of personal data.
        for w in workers:
            status, _, health = _get(w, "/health")
            assert (status, health) == (200, {"status": "ok"})
            status, _, ready = _get(w, "/ready")
            assert (status, ready) == (200, {"ready": True})
            check_answer("/ready", 200, "application/json", ready)
            assert _get(w, "/openapi.json")[2] == orjson.loads(orjson.dumps(document()))


def test_without_a_token_the_api_is_off(topics_ready: str, tmp_path: Path) -> None:
    # Empty counts as unset (compose passes `${TOUCHPOINT_API_TOKEN:-}`).
    with WorkerProcess(topics_ready, tmp_path, TOUCHPOINT_API_TOKEN="") as w:
        for headers in ({}, AUTH):
            status, _, body = _get(w, "/customers/C-0", headers)
            assert (status, body["error"]) == (404, "api_disabled")
            assert "TOUCHPOINT_API_TOKEN" in body["detail"]
            check_answer("/customers/{id}", 404, "application/json", body)


def test_an_identifier_merged_into_a_customer_answers_with_that_customer(
    topics_ready: str, tmp_path: Path
) -> None:
    anon = {"anonymous_id": "ck-9"}
    browsing = [(t.WEB, None, _event("m1", "product_view", anon, product_id="P-1"))]
    login = [(t.WEB, None, _event("m2", "login", {"customer_id": "C-9", **anon}))]
    with WorkerProcess(topics_ready, tmp_path, TOUCHPOINT_API_TOKEN=TOKEN) as worker:
        asyncio.run(produce(topics_ready, browsing))
        deadline = time.monotonic() + 30
        while _get(worker, "/customers/anon:ck-9", AUTH)[0] != 200:
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.3)
        asyncio.run(produce(topics_ready, login))
        # After the merge, the anonymous id's key only holds a marker pointing to C-9; the
        # hand-over of the browsing profile reaches C-9 a moment later.
        while (
            (answer := _get(worker, "/customers/ck-9?kind=anonymous_id", AUTH))[2].get(
                "customer_id"
            ),
            answer[2].get("stage"),
        ) != ("C-9", "consideration"):
            assert time.monotonic() < deadline + 30, (answer, worker.log_tail())
            time.sleep(0.3)
    status, _, body = answer
    assert status == 200
    assert body["stage"] == "consideration"
    check_answer("/customers/{id}", 200, "application/json", body)


def _partition(key: str, partitions: int = 8) -> int:
    # The producers' default partitioner (Kafka's murmur2), as Faust's router uses it.
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def test_every_linked_identifier_finds_its_person_on_any_worker(
    topics_ready: str, tmp_path: Path
) -> None:
    """Identifiers linked to a person that never sent an event of their own: each one answers
    with that person, whichever worker is asked and whichever owns the alias or the state."""
    msgs: list[tuple[str, bytes | None, bytes | None]] = []
    # identifier as asked -> (the person's key, stage, linked identifiers)
    want: dict[str, tuple[str, str, list[dict[str, str]]]] = {}
    cart: dict[str, object] = {"product_id": "P-1", "price": 9.5}

    def card_props(card: str) -> dict[str, object]:
        return {"loyalty_id": card, "store_id": "S-1"}

    for i in range(6):
        cid, email, anon, card = f"C-L{i}", f"l{i}@example.com", f"ck-l{i}", f"L-L{i}"
        signup = {"customer_id": cid, "email": email, "anonymous_id": anon}
        on_card = {"customer_id": cid, "loyalty_id": card}
        msgs += [
            (t.WEB, None, _event(f"l{i}-1", "signup", signup, consent={"email": True})),
            (t.WEB, None, _event(f"l{i}-2", "cart_add", {"customer_id": cid}, **cart)),
            (t.STORE, None, _event(f"l{i}-3", "loyalty_signup", on_card, **card_props(card))),
        ]
        linked = [
            {"kind": "customer_id", "value": cid},
            {"kind": "email", "value": email},
            {"kind": "anonymous_id", "value": anon},
            {"kind": "loyalty_id", "value": card},
        ]
        person = (cid, "consideration", linked)
        for asked in (cid, f"email:{email}", f"anon:{anon}", f"loyalty:{card}"):
            want[asked] = person
        want[f"{urllib.parse.quote(email.upper())}?kind=email"] = person
        want[f"{anon}?kind=anonymous_id"] = person
        # No customer id: the group is named by its email; the cookie is linked to it.
        news, cookie = f"n{i}@example.com", f"ck-n{i}"
        subscribe = {"email": news, "anonymous_id": cookie}
        msgs.append((t.WEB, None, _event(f"n{i}-1", "newsletter_subscribe", subscribe)))
        group = [{"kind": "email", "value": news}, {"kind": "anonymous_id", "value": cookie}]
        for asked in (f"email:{news}", f"anon:{cookie}", f"{cookie}?kind=anonymous_id"):
            want[asked] = (f"email:{news}", "awareness", group)

    env = {"TOUCHPOINT_API_TOKEN": TOKEN}
    w1 = WorkerProcess(topics_ready, tmp_path / "w1", **env)
    w2 = WorkerProcess(topics_ready, tmp_path / "w2", **env)
    with w1, w2:
        workers = [w1, w2]
        eventually("both workers ready", lambda: next(
            (f"{w.web_port} not ready" for w in workers if _get(w, "/ready")[0] != 200), None
        ), timeout_s=90)  # fmt: skip
        asyncio.run(produce(topics_ready, msgs))

        def answers() -> dict[str, list[tuple[int, Any]]]:
            return {
                asked: [_get(w, f"/customers/{asked}", AUTH)[::2] for w in workers]
                for asked in want
            }

        def wrong() -> str | None:
            for asked, got in answers().items():
                key, stage, _ = want[asked]
                for status, body in got:
                    if status != 200 or (body["customer_id"], body["stage"]) != (key, stage):
                        return f"{asked}: {status} {body}"
            return None

        # The alias reaches the route agents a moment after the linking event is applied.
        eventually("every identifier answers with its person", wrong, timeout_s=60)
        for asked, got in answers().items():
            key, stage, linked = want[asked]
            for status, body in got:
                assert status == 200, (asked, body)
                check_answer("/customers/{id}", 200, "application/json", body)
                assert (body["customer_id"], body["stage"]) == (key, stage), asked
                # The person's own identifier first; the others in the order their linking
                # events arrived (web and store are read concurrently).
                own, *others = body["linked_identifiers"]
                assert [own, *sorted(others, key=str)] == [linked[0], *sorted(linked[1:], key=str)]
            assert got[0] == got[1], asked
        person = _get(w2, "/customers/l3%40example.com?kind=email", AUTH)[2]
        assert person["consent"]["email"] is True
        assert [p["name"] for p in person["pending_timers"]] == ["wait:abandoned_cart"]

        # Every link counted once over both workers: per person, the signup's three
        # identifiers (three pairs) and the card; per newsletter, the email and the cookie.
        assert _summed(workers, "touchpoint_identity_links_total") == 6 * (3 + 1 + 1)
        assert _summed(workers, "touchpoint_identity_conflicts_total") == 0
        # Nobody had state to hand over: the linked identifiers never sent an event alone.
        assert _summed(workers, "touchpoint_identity_merges_total") == 0

        # A second account claims l0's email: a conflict. The email stays with the smaller
        # customer id, and the second account stays a person of its own.
        claim = {"customer_id": "C-M0", "email": "l0@example.com"}
        asyncio.run(produce(topics_ready, [(t.WEB, None, _event("m0-1", "login", claim))]))
        eventually("the conflict was not counted", lambda: None if _summed(
            workers, "touchpoint_identity_conflicts_total") == 1 else "not yet", 30)  # fmt: skip
        assert _summed(workers, "touchpoint_identity_links_total") == 6 * (3 + 1 + 1) + 1
        # The login reaches C-M0's journey a moment after the link agent counted it.
        eventually("C-M0 was not answered", lambda: next((
            f"{w.web_port}: {got}" for w in workers
            if (got := _get(w, "/customers/C-M0", AUTH))[0] != 200), None), 30)  # fmt: skip
        for w in workers:
            status, _, other = _get(w, "/customers/C-M0", AUTH)
            assert (status, other["customer_id"], other["stage"]) == (200, "C-M0", "awareness")
            assert other["linked_identifiers"] == [
                {"kind": "customer_id", "value": "C-M0"},
                {"kind": "email", "value": "l0@example.com"},
            ]
            assert _get(w, "/customers/email:l0@example.com", AUTH)[2]["customer_id"] == "C-L0"
            assert _get(w, "/customers/C-L0", AUTH)[2]["customer_id"] == "C-L0"

        # Nobody ever used this cookie: still a 404, from either worker.
        for w in workers:
            status, _, body = _get(w, "/customers/anon:ck-never", AUTH)
            assert (status, body["error"]) == (404, "not_found")

        # The identifiers above cover every routing case: the alias and the person on
        # different workers (asked of both, so the asked worker holds neither, one or both).
        owner = {p: w.web_port for w in workers for p in _get(w, "/status.json")[2]["partitions"]}
        assert sorted(owner) == list(range(8)), owner
        split = [
            asked
            for asked, (key, _, _) in want.items()
            if asked.startswith(("email:", "anon:", "loyalty:")) and key != asked
            and owner[_partition(_node(asked))] != owner[_partition(key)]
        ]  # fmt: skip
        assert split, "no identifier's alias lives on another worker than its person"


def _node(key: str) -> str:
    """The graph node of a canonical key (`email:a@x` -> `e:a@x`)."""
    for prefix, node in (("email:", "e:"), ("loyalty:", "l:"), ("anon:", "a:")):
        if key.startswith(prefix):
            return node + key.removeprefix(prefix)
    return "c:" + key


#: The routes anyone may read: counts, health and the API's description, never a person.
PUBLIC_ROUTES = {"/", "/status.json", "/metrics", "/health", "/ready", "/openapi.json"}


def _served_routes() -> set[str]:
    """Every path pattern the worker's web server answers, read off the aiohttp router of an
    app built as `touchpoint run` builds it (Faust's own views included, if any are on)."""
    from processor.journey.definition import load_journey
    from processor.metrics import Metrics
    from processor.settings import Settings
    from processor.stream.agents import wiring
    from processor.stream.app import create_app
    from processor.stream.timers import clock
    from processor.web import views

    settings = Settings(kafka_bootstrap="127.0.0.1:9")  # nothing connects
    journey = load_journey(settings.journey_file)
    rt = create_app(settings, journey, Metrics.create(stages=tuple(journey.stages)))
    wiring.install(rt)
    clock.install(rt)
    views.install(rt)
    rt.app.web.init_server()
    return {route.resource.canonical for route in rt.app.web.web_app.router.routes()}


def test_every_route_without_the_token_keeps_personal_data_back(
    topics_ready: str, tmp_path: Path
) -> None:
    served = _served_routes()
    private = served - PUBLIC_ROUTES
    assert private == {"/customers/{id}"}, f"routes without a decision on the token: {private}"
    msgs, stages = _traffic()
    identifiers = ["C-0", "e0@example.com", "L-0", "ck-0"]
    with WorkerProcess(topics_ready, tmp_path, TOUCHPOINT_API_TOKEN=TOKEN) as worker:
        asyncio.run(produce(topics_ready, msgs))
        eventually("the traffic was not processed", lambda: None if _processed([worker]) >= len(
            msgs) else "not yet", timeout_s=60)  # fmt: skip
        assert _get(worker, "/customers/email:e0@example.com", AUTH)[0] == 200
        # Every pattern, filled with each kind of identifier and each table, without a token.
        fillers = {"id": [*stages, *identifiers], "name": [t.JOURNEY_TABLE, t.ALIAS_TABLE,
                   t.GRAPH_TABLE], "key": ["C-0", "e:e0@example.com", "c:C-0"]}  # fmt: skip
        # Faust's table and router views, which served a person's state without a token.
        probes = {
            f"/table/{t.JOURNEY_TABLE}/C-0/", f"/table/{t.ALIAS_TABLE}/e:e0@example.com/",
            f"/table/{t.GRAPH_TABLE}/c:C-0/", "/table/", f"/router/{t.JOURNEY_TABLE}/C-0/",
            "/router/", "/graph/", "/performance/",
        }  # fmt: skip
        for pattern in served:
            paths = [pattern]
            for name, values in fillers.items():
                if "{" + name + "}" in pattern:
                    paths = [p.replace("{" + name + "}", urllib.parse.quote(v, safe=":"))
                             for p in paths for v in values]  # fmt: skip
            probes.update(paths)
        for path in sorted(probes):
            request = urllib.request.Request(worker.url(path))
            try:
                with urllib.request.urlopen(request, timeout=15) as r:
                    status, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read()
            route = path if path in PUBLIC_ROUTES else None
            if route is None and path.startswith("/customers/"):
                assert status == 401, (path, status, body[:200])
            elif route is None:
                assert status == 404, (path, status, body[:200])  # not served at all
            else:
                assert status == 200, (path, status)
            text = body.decode("utf-8", "replace").lower()
            leaked = [i for i in identifiers if i.lower() in text]
            assert not leaked, (path, leaked)
