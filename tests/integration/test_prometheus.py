"""A real Prometheus scrapes a real worker: every dashboard and alert query returns data."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from processor import topics as t
from tests.support.journeys import shortened
from tests.support.kafka import produce
from tests.support.observability import (
    alert_rules,
    as_bool,
    dashboard_queries,
    used_metric_names,
    with_macros,
)
from tests.support.prometheus import Prometheus
from tests.support.system_tools import require_tool
from tests.support.traffic import generate
from tests.support.worker import WorkerProcess, eventually, metric_values

pytestmark = pytest.mark.broker


def _total(text: str, name: str) -> float:
    return sum(metric_values(text, name).values())


def _sample_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names


def _fresh_carts(n: int) -> list[tuple[str, bytes | None, bytes | None]]:
    """Carts added just now, so their reminder timers (1 h, here 2 s) fire during the test."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return [
        (
            t.WEB,
            f"C-CART-{i}".encode(),
            orjson.dumps(
                {
                    "event_id": f"cart-{i}",
                    "type": "cart_add",
                    "occurred_at": now,
                    "identity": {"customer_id": f"C-CART-{i}"},
                    "properties": {"product_id": "P-1", "quantity": 1, "price": 5.0},
                }
            ),
        )
        for i in range(n)
    ]


def test_every_dashboard_and_alert_query_returns_data(topics_ready: str, tmp_path: Path) -> None:
    binary = require_tool("prometheus")
    # Hours last 2 s, so the traffic's cart reminders fire and the timer panels get data; days
    # stay days, so that the 2 h old traffic is not too stale to act on.
    journey = shortened(tmp_path, hour_s=2, day_s=86400)
    messages = [*generate(40).messages, *_fresh_carts(3)]
    env = {"TOUCHPOINT_JOURNEY_FILE": str(journey), "TOUCHPOINT_TIMER_TICK_S": "0.5"}
    with (
        WorkerProcess(topics_ready, tmp_path / "worker", **env) as worker,
        Prometheus(binary, tmp_path / "prometheus", [f"127.0.0.1:{worker.web_port}"]) as prom,
    ):
        # rate() only sees what happens after the first scrape: no traffic before it.
        eventually("no first scrape", lambda: None if prom.query("up == 1") else "none", 30)
        asyncio.run(produce(topics_ready, messages))

        def worker_done() -> str | None:
            text = worker.metrics()
            consumed = _total(text, "touchpoint_messages_consumed_total")
            fired = _total(text, "touchpoint_timers_fired_total")
            if consumed < len(messages) or not fired:
                return f"consumed {consumed} of {len(messages)}, {fired} timers fired"
            return None

        eventually("the worker did not process the traffic", worker_done, timeout_s=120)
        text = worker.metrics()

        # Every metric name the dashboard, the alerts or the README mention is exported.
        exported = _sample_names(text)
        for where, names in used_metric_names().items():
            assert names <= exported, (where, sorted(names - exported))

        # Prometheus has scraped the worker after the traffic, with the same count.
        def scraped() -> str | None:
            got = prom.query("sum(touchpoint_messages_consumed_total)")
            value = float(got[0]["value"][1]) if got else None
            return None if value == len(messages) else f"Prometheus sees {value}"

        eventually("Prometheus did not scrape the worker", scraped, timeout_s=30)

        queries = [(f"dashboard: {title}", with_macros(e)) for title, e in dashboard_queries()]
        queries += [(f"alert: {r['alert']}", as_bool(r["expr"])) for r in alert_rules()]
        assert len(queries) > 20
        for label, expr in queries:

            def answers(expr: str = expr) -> str | None:
                result = prom.query(expr)
                values = [float(r["value"][1]) for r in result]
                if not any(math.isfinite(v) for v in values):
                    return f"{expr!r} returned {result}"
                return None

            # rate() needs two scrapes inside its window after the traffic: a few seconds.
            eventually(f"{label} returns no data", answers, timeout_s=30)

        # The rules load and evaluate cleanly on the live data.
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
        for rule in rules:
            assert rule["health"] == "ok", rule
        up = prom.query('up{job="touchpoint"}')
        assert [float(r["value"][1]) for r in up] == [1.0]
