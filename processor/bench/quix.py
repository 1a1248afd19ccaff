"""Contestant (c): the naive job as a Quix Streams app, what a Python team might pick instead.

One streaming dataframe per inbound topic that parses each message, updates the key's state
(Quix's RocksDB store with its changelog topic) and produces the message to an output topic.
Quix Streams' defaults otherwise (at-least-once, a commit every 5 s), with the session timeout of
the processor's own consumers.

Quix Streams needs an older librdkafka binding (confluent-kafka < 2.13) than the one the tests
use, so it runs in an environment of its own that the benchmark makes on first use
(`environment()`, under `data/`). The contestant runs there as
`python -m processor.bench.quix` with only the standard library, orjson and Quix Streams; it
stops after `--expect` messages or `--seconds` of processing, whichever comes first, and
writes the result as JSON to `--result`.
"""

from __future__ import annotations

import fcntl
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from processor.bench.progress import Progress, arguments

OUTPUT = "bench-quix-output"
#: The Quix Streams release the contestant runs.
QUIXSTREAMS = "quixstreams==3.28.1"
_ENV = Path(__file__).resolve().parents[2] / "data" / "quix-env"


def environment(log: Any = print) -> Path:
    """The Python of the contestant's own environment, made (once) if it is not there yet.
    Several benchmarks may ask at once (the test suite runs in parallel): one makes it while
    the others wait on a lock, then find it made."""
    python = _ENV / "bin" / "python"
    stamp = _ENV / f"{QUIXSTREAMS}.installed"
    _ENV.parent.mkdir(parents=True, exist_ok=True)
    with (_ENV.parent / "quix-env.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            log(f"  making the Quix Streams environment ({QUIXSTREAMS}) in {_ENV}")
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(_ENV)], check=True)  # noqa: S603
            subprocess.run(  # noqa: S603 (our own environment's pip)
                [str(python), "-m", "pip", "install", "--quiet", QUIXSTREAMS], check=True
            )
            stamp.touch()
    return python


def main() -> int:
    p = arguments(__doc__)
    p.add_argument("--topics", required=True, help="the inbound topics, comma-separated")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from quixstreams import Application  # type: ignore[import-not-found]  # environment()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=f"bench-quix-{args.run}",
        auto_offset_reset="earliest",
        state_dir=args.datadir,
        loglevel="WARNING",
        consumer_extra_config={"session.timeout.ms": 10_000},
    )
    output = app.topic(OUTPUT, key_serializer="bytes", value_serializer="bytes")
    progress = Progress(args.result)

    def naive(
        value: bytes | None, key: bytes | None, timestamp: int, headers: Any, state: Any
    ) -> bytes:
        progress.one()
        try:
            parsed = orjson.loads(value) if value else None
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            old = state.get("state")
            count = old["n"] + 1 if old is not None else 1
            state.set(
                "state", {"n": count, "last": parsed.get("type"), "at": parsed.get("occurred_at")}
            )
        if progress.n >= args.expect or progress.seconds() >= args.seconds:
            progress.finish()
        return value or b""

    for name in args.topics.split(","):
        source = app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
        app.dataframe(source).apply(naive, stateful=True, metadata=True).to_topic(output)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
