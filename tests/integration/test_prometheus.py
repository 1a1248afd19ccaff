"""A real Prometheus scrapes a real worker: every dashboard and alert query returns data."""

from __future__ import annotations

import asyncio
import html
import math
import os
import shutil
import struct
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from processor import __version__
from processor import topics as t
from tests.deploy.dashboard_render import page_height, render
from tests.support.journeys import shortened
from tests.support.kafka import produce
from tests.support.observability import (
    ROOT,
    alert_rules,
    as_bool,
    dashboard,
    dashboard_queries,
    panels,
    used_metric_names,
    with_macros,
)
from tests.support.prometheus import Prometheus
from tests.support.system_tools import ARTIFACTS, require_tool
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

        # Every metric name the dashboard, the alerts or the docs mention is exported.
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
        build = prom.query("touchpoint_build_info")
        assert [(r["metric"]["version"], float(r["value"][1])) for r in build] == [
            (__version__, 1.0)
        ]


#: What the picture is, written on it: a rendering of the dashboard's queries, not Grafana.
CAPTION = (
    "Not Grafana: a rendering of deploy/grafana/dashboards/touchpoint.json by "
    "tests/deploy/dashboard_render.py. Each panel's title, layout, unit and PromQL are the "
    "dashboard's; the values come from a real Prometheus scraping a worker every second while "
    "`touchpoint simulate` plays customers at a day a minute (2% invalid, 2% duplicates)."
)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip
#: A day of simulated time per wall minute, as `make run` plays it.
COMPRESSION = 1440


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_the_dashboard_drawn_from_its_queries_against_a_real_prometheus(
    topics_ready: str, tmp_path: Path
) -> None:
    """Every panel of the dashboard, evaluated over a stretch of simulated traffic, has data;
    the picture is kept as artifacts/dashboard.png. `make dashboard-picture` runs this test
    longer (TOUCHPOINT_DASHBOARD_TRAFFIC_S) and copies the picture to where the docs show it
    (TOUCHPOINT_DASHBOARD_PNG)."""
    binary = require_tool("prometheus")
    chromium = require_tool("chromium")
    traffic_s = float(os.environ.get("TOUCHPOINT_DASHBOARD_TRAFFIC_S", "40"))
    cli = [sys.executable, "-m", "processor.cli"]
    journey = tmp_path / "journey.yaml"
    subprocess.run([*cli, "simulate", "--time-compression", str(COMPRESSION),
                    "--write-journey", str(journey)], check=True, capture_output=True)  # fmt: skip
    # The simulator sizes its too_large messages just over this limit: 64 KiB, so that they
    # also fit Apache Kafka's default maximum message size (1 MB), unlike the 1 MiB default.
    limit = {"TOUCHPOINT_MAX_EVENT_BYTES": "65536"}
    env = {"TOUCHPOINT_JOURNEY_FILE": str(journey), "TOUCHPOINT_TIMER_TICK_S": "0.5", **limit}
    with (
        WorkerProcess(topics_ready, tmp_path / "worker", **env) as worker,
        Prometheus(binary, tmp_path / "prometheus", [f"127.0.0.1:{worker.web_port}"]) as prom,
    ):
        eventually("no first scrape", lambda: None if prom.query("up == 1") else "none", 30)
        start = time.time()
        simulate = [*cli, "simulate", "--customers", "300", "--seed", "7", "--rate", "25",
                    "--time-compression", str(COMPRESSION), "--duration", str(traffic_s),
                    # First touchpoints spread over the whole run: a steady flow of newcomers.
                    "--spread-days", f"{traffic_s * COMPRESSION / 86400:.3f}",
                    "--invalid-fraction", "0.02", "--duplicate-fraction", "0.02",
                    "--quiet"]  # fmt: skip
        sim_env = {**os.environ, "TOUCHPOINT_KAFKA_BOOTSTRAP": topics_ready, **limit}
        played = subprocess.run(
            simulate, env=sim_env, timeout=traffic_s + 120, capture_output=True, text=True
        )
        assert played.returncode == 0, played.stderr[-3000:]

        def caught_up() -> str | None:
            lag = prom.query("sum(touchpoint_consumer_lag_messages)")
            behind = float(lag[0]["value"][1]) if lag else None
            return None if behind == 0 else f"lag {behind}"

        eventually("the worker did not catch up", caught_up, timeout_s=60)
        time.sleep(3)  # a few more scrapes after the last message, as a dashboard would see
        end = time.time()
        metrics_text = worker.metrics()
        page, drawn = render(dashboard(), prom.api, start, end, scrape_s=1.0, caption=CAPTION)

    # Every panel of the dashboard is drawn, in its order, and every one has data.
    titles = [p["title"] for p in panels(dashboard()) if p["type"] != "row"]
    assert [d.title for d in drawn] == titles
    for d in drawn:
        finite = [v for s in d.series for _, v in s.points if math.isfinite(v)]
        assert finite, f"{d.title}: no data"
    by_title = {d.title: d for d in drawn}
    assert [s.last() for s in by_title["Workers up"].series] == [1.0]
    funnel = {s.legend: s.last() for s in by_title["Stage funnel"].series}
    exported = {dict(k)["stage"]: v for k, v in
                metric_values(metrics_text, "touchpoint_customers").items()}  # fmt: skip
    assert funnel == exported
    assert (funnel["purchase"] or 0) > 0
    assert (funnel["consideration"] or 0) > 0
    kinds = {s.legend for s in by_title["Dead letters / s by kind"].series}
    assert {"validation", "unknown_type"} <= kinds, kinds
    assert html.escape(CAPTION) in page
    assert "No data" not in page

    html_path = tmp_path / "dashboard.html"
    html_path.write_text(page, encoding="utf-8")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    height = page_height(dashboard())
    done = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         f"--window-size=1600,{height}", f"--screenshot={shot}", html_path.as_uri()],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert _png_size(shot) == (1600, height)
    assert shot.stat().st_size > 50_000
    if target := os.environ.get("TOUCHPOINT_DASHBOARD_PNG"):
        shutil.copyfile(shot, ROOT / target)
