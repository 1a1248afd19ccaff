"""JSON log lines: the fields a log pipeline indexes, and nothing an exception message holds."""

from __future__ import annotations

import logging

import orjson

from processor.logs import JsonFormatter, record_fields


def _format(**kwargs: object) -> dict[str, object]:
    record = logging.LogRecord(
        "processor.stream.agents.ingest", logging.ERROR, __file__, 1, "ingest failed %s", ("x",),
        kwargs.pop("exc_info", None),  # type: ignore[arg-type]
    )  # fmt: skip
    record.__dict__.update(kwargs)
    line: dict[str, object] = orjson.loads(JsonFormatter().format(record))
    return line


def test_a_line_has_time_level_logger_message_and_the_record_in_hand() -> None:
    line = _format(**record_fields("touchpoints.web", 3, 1234))
    assert set(line) == {"time", "level", "logger", "message", "topic", "partition", "offset"}
    assert line["level"] == "error"
    assert line["logger"] == "processor.stream.agents.ingest"
    assert line["message"] == "ingest failed x"
    assert (line["topic"], line["partition"], line["offset"]) == ("touchpoints.web", 3, 1234)
    assert str(line["time"]).endswith("Z")


def test_an_exception_gives_its_type_and_traceback_but_not_its_message() -> None:
    email = "jane.doe" + "@example.com"  # a value: the traceback shows source lines only
    try:
        raise ValueError(f"{email} is not valid")
    except ValueError:
        import sys

        line = _format(exc_info=sys.exc_info())
    assert line["error"] == "ValueError"
    assert "test_an_exception_gives" in str(line["traceback"])
    assert "jane.doe" not in orjson.dumps(line).decode()
