"""How the worker's log lines look: Faust's text lines, or one JSON object a line.

`TOUCHPOINT_LOG_FORMAT=json` is for log pipelines (Loki, Elasticsearch, Cloud Logging): every
line an object with time, level, logger and message, plus the topic, partition and offset of
the record in hand when a line is about one. Messages never carry personal data; an
exception gives its type and traceback, not its message (which may quote a value).
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

#: Attributes that `log.error(..., extra=record_fields(...))` sets on a record, kept as fields.
FIELDS = ("topic", "partition", "offset")

LogFormat = Literal["text", "json"]


def record_fields(topic: str, partition: int, offset: int) -> dict[str, Any]:
    """`extra=` for a log call about one Kafka record."""
    return {"topic": topic, "partition": partition, "offset": offset}


def _line(level: str, logger: str, message: str, when: float | None = None) -> dict[str, Any]:
    at = datetime.fromtimestamp(when, UTC) if when is not None else datetime.now(UTC)
    return {
        "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "logger": logger,
        "message": message,
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        out = _line(record.levelname.lower(), record.name, record.getMessage(), record.created)
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = record.exc_info[0].__name__
            out["traceback"] = "".join(traceback.format_tb(record.exc_info[2]))
        return orjson.dumps(out).decode()


def logging_config(fmt: LogFormat) -> dict[str, Any] | None:
    """The `logging_config` for Faust's worker: None keeps Faust's own text format."""
    if fmt == "text":
        return None
    return {
        "version": 1,
        "merge": True,  # into Faust's own configuration (its levels and loggers)
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "json", "stream": sys.stderr}
        },
    }


def announce(
    fmt: LogFormat, message: str, *, level: str = "info", stream: TextIO | None = None
) -> None:
    """A line the command prints itself (an address, a warning), in the format of the worker's
    log: on stdout, or `stream`."""
    out = stream or sys.stdout
    if fmt == "json":
        print(orjson.dumps(_line(level, "touchpoint", message)).decode(), file=out, flush=True)
    else:
        prefix = "touchpoint: " if level == "info" else f"touchpoint: {level}: "
        print(f"{prefix}{message}", file=out, flush=True)
