"""Actions a policy held back are counted by rule and reason on a real worker: consent, stale,
quiet hours (moved to the morning) and caps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from processor import topics as t
from tests.support.journeys import shortened
from tests.support.kafka import produce
from tests.support.worker import WorkerProcess, eventually, metric_values

pytestmark = pytest.mark.broker


def _zone_at(local_hour: int, now: datetime) -> str:
    """A fixed-offset IANA zone whose local hour is `local_hour` now."""
    offset = (local_hour - now.hour) % 24
    offset = offset - 24 if offset > 14 else offset
    # Etc/GMT zones count the other way round: Etc/GMT-3 is UTC+3.
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def _event(cid: str, n: int, typ: str, at: datetime, zone: str, **props: object) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{cid}-{n}",
            "type": typ,
            "occurred_at": at.isoformat().replace("+00:00", "Z"),
            "identity": {"customer_id": cid},
            "context": {"timezone": zone},
            "properties": props,
        }
    )


def test_suppressed_actions_are_counted_by_rule_and_reason(
    topics_ready: str, tmp_path: Path
) -> None:
    # Hours last a second, so the cart reminder comes during the test; one capped message a
    # local day, so the reminder after the welcome is one too many.
    journey = shortened(tmp_path, hour_s=1, day_s=86400)
    text = journey.read_text(encoding="utf-8")
    assert "per_local_day: 2" in text
    journey.write_text(text.replace("per_local_day: 2", "per_local_day: 1"), encoding="utf-8")
    now = datetime.now(UTC)
    day, night = _zone_at(13, now), _zone_at(2, now)
    yes = {"consent": {"email": True}}
    messages = [
        # No opt-in: the welcome is held back for consent.
        _event("C-CONSENT", 1, "signup", now, day),
        # A signup two days old reaches the worker only now: too stale to welcome.
        _event("C-STALE", 1, "signup", now - timedelta(days=2), day, **yes),
        # 02:00 where the person is: the welcome is moved to the end of the quiet hours.
        _event("C-QUIET", 1, "signup", now, night, **yes),
        # Welcomed at 13:00; the cart reminder a second later would be the day's second.
        _event("C-CAP", 1, "signup", now, day, **yes),
        _event("C-CAP", 2, "cart_add", now, day, product_id="P-1", price=9.5),
    ]
    env = {"TOUCHPOINT_JOURNEY_FILE": str(journey), "TOUCHPOINT_TIMER_TICK_S": "0.5"}
    with WorkerProcess(topics_ready, tmp_path / "worker", **env) as worker:
        asyncio.run(produce(topics_ready, [(t.WEB, None, m) for m in messages]))

        def suppressed() -> dict[tuple[str, str], float]:
            got = metric_values(worker.metrics(), "touchpoint_actions_suppressed_total")
            return {(dict(k)["rule"], dict(k)["reason"]): v for k, v in got.items() if v}

        want = {
            ("welcome", "consent"): 1.0,
            ("welcome", "stale"): 1.0,
            ("welcome", "quiet_hours"): 1.0,
            ("abandoned_cart", "cap"): 1.0,
        }
        eventually("suppressions", lambda: None if suppressed() == want else f"{suppressed()}", 60)
        fired = sum(metric_values(worker.metrics(), "touchpoint_timers_fired_total").values())
        assert fired == 1
        actions = metric_values(worker.metrics(), "touchpoint_actions_total")
        # The moved welcome is still sent (later); the capped reminder is not.
        assert {dict(k)["template"]: v for k, v in actions.items() if v} == {"welcome": 2.0}
