"""The demo's summary from /metrics, tail's filters, rebuilding a dead letter's original, and
publish --now."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from processor.cli.kafka import tail_filters
from processor.kafka.tools import _matches, _original
from processor.metrics import Metrics
from processor.simulate.summary import parse, render


def test_summary_counts_people_per_stage_actions_and_dead_letters() -> None:
    m = Metrics.create(stages=("awareness", "consideration", "purchase"))
    m.messages_consumed.labels("web").inc(10)
    m.transitions.labels("none", "awareness").inc(4)
    m.transitions.labels("awareness", "consideration").inc(3)
    m.transitions.labels("consideration", "purchase").inc(1)
    m.actions.labels("send_email", "welcome").inc(2)
    m.deadletters.labels("web", "validation").inc(1)
    snap = parse(generate_latest(m.registry).decode())
    assert snap.stages == {"awareness": 1, "consideration": 2, "purchase": 1}
    assert snap.actions == {"welcome": 2}
    assert snap.deadletters == {"validation": 1}
    text = render(snap, None, 2.0, 1.5, "http://127.0.0.1:6066")
    assert "5.0 msg/s" in text
    assert "awareness 1  consideration 2  purchase 1" in text
    assert "welcome 2" in text
    assert "validation 1" in text


def _args(topic: str, **kw: str) -> argparse.Namespace:
    return argparse.Namespace(topic=topic, where=kw.pop("where", "").split() or [], **kw)


def test_tail_shortcuts_and_dotted_fields() -> None:
    assert tail_filters(_args("actions", customer="C-1", template="welcome")) == {
        "customer_id": "C-1",
        "template": "welcome",
    }
    assert tail_filters(_args("deadletter", kind="decode", customer="k")) == {
        "error.kind": "decode",
        "source.key": "k",
    }
    with pytest.raises(ValueError, match="--kind does not apply to actions"):
        tail_filters(_args("actions", kind="decode"))
    letter = {"error": {"kind": "decode"}, "source": {"key": "k"}}
    assert _matches(letter, {"error.kind": "decode", "source.key": "k"})
    assert not _matches(letter, {"error.kind": "validation"})
    assert not _matches(letter, {"error.kind.deeper": "decode"})


def test_original_of_a_dead_letter() -> None:
    raw = b"\xff\xfe not utf-8"
    letter = {
        "source": {"topic": "touchpoints.web", "key": base64.b64encode(b"\xff").decode(),
                   "key_encoding": "base64", "partition": 0, "offset": 3},
        "raw": base64.b64encode(raw).decode(),
        "raw_encoding": "base64",
    }  # fmt: skip
    assert _original(letter) == ("touchpoints.web", b"\xff", raw)
    text = {"source": {"topic": "touchpoints.email", "key": "ana"}, "raw": "{}"}
    assert _original(text) == ("touchpoints.email", b"ana", b"{}")
    with pytest.raises(ValueError, match="only a prefix"):
        _original({**text, "raw_truncated": True})
    with pytest.raises(ValueError, match="not an inbound topic"):
        _original({**text, "source": {"topic": "journey.actions"}})


def test_publish_now_moves_every_event_time_by_one_offset(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    import orjson

    from processor.kafka.tools import shift_to, shifted

    lines = [
        b'{"event_id":"a","occurred_at":"2026-11-22T09:00:00Z","identity":{"email":"x@y.z"}}',
        b'{"event_id":"b","occurred_at":"2026-11-22T11:30:00.250+02:00"}',
        b'{"command":"erase_customer","requested_at":"2026-11-22T09:10:00Z"}',
        b'{"event_id":"future","occurred_at":"2036-01-01T00:00:00Z"}',  # left out of the anchor
        b'{"event_id":"bad","occurred_at":"yesterday"}',
        b"not json",
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    now = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    delta = shift_to(path, now)
    assert delta == now - datetime(2026, 11, 22, 9, 30, 0, 250000, tzinfo=UTC)
    out = [shifted(line, delta) for line in lines]
    times = [orjson.loads(o).get("occurred_at") or orjson.loads(o).get("requested_at")
             for o in out[:4]]  # fmt: skip
    assert times == [
        "2027-03-01T11:29:59.750Z",
        "2027-03-01T12:00:00.000Z",
        "2027-03-01T11:39:59.750Z",
        "2036-04-09T02:29:59.750Z",
    ]
    assert orjson.loads(out[0])["identity"] == {"email": "x@y.z"}  # the rest unchanged
    assert out[4:] == lines[4:]  # bad input stays bad
    assert shift_to(tmp_path / "events.jsonl", datetime(2020, 1, 1, tzinfo=UTC)) == timedelta(0)
