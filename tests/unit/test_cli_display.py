"""What long commands show: the demo's panel, progress bars on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from processor.cli import progress as progress_module
from processor.cli.demo import panel
from processor.cli.progress import progress
from processor.simulate.summary import Snapshot, rows, title


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_demo_panel_holds_every_row_of_the_summary() -> None:
    now = Snapshot(consumed=120, processed=100, stages={"awareness": 7, "purchase": 2},
                   actions={"welcome": 5}, deadletters={"validation": 1})  # fmt: skip
    console = Console(record=True, width=140, file=io.StringIO())
    console.print(panel(title(1.5, "http://127.0.0.1:6066"), rows(now, None, 3.0), "finished"))
    text = console.export_text()
    assert "touchpoint demo · simulated day 1.5 · http://127.0.0.1:6066" in text
    for label, value in rows(now, None, 3.0):
        assert label in text
        assert value.split("   ")[0].strip() in text
    assert "welcome 5" in text
    assert "validation 1" in text
    assert "finished · Ctrl-C stops broker, worker and simulator" in text


def test_without_a_terminal_progress_is_a_plain_line_now_and_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(progress_module, "PLAIN_EVERY_S", 0.0)
    with progress("publishing events.jsonl", stream=out) as done:
        done(1000, 5000)
        done(2000)
    assert out.getvalue().splitlines() == [
        "publishing events.jsonl: 1,000 of 5,000 messages",
        "publishing events.jsonl: 2,000 of 5,000 messages",
    ]


def test_on_a_terminal_progress_is_a_bar() -> None:
    out = _Terminal()
    with progress("publishing events.jsonl", stream=out) as done:
        done(1000, 5000)
    assert "publishing events.jsonl" in out.getvalue()
    assert "\\x1b[" in repr(out.getvalue())  # drawn with control sequences
