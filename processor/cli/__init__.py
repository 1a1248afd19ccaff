"""The `touchpoint` command line: run a worker, the embedded broker, and operator tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from processor import __version__
from processor.cli import demo, journey, kafka, simulate, worker
from processor.kafka.embedded import EmbeddedBrokerError

DESCRIPTION = """\
touchpoint-processor: a Kafka-native customer journey engine.

Reads touchpoint events from touchpoints.web, touchpoints.email and touchpoints.store,
keeps each person's journey state, and writes stage transitions to journey.transitions,
follow-up actions to journey.actions, and unprocessable input to touchpoints.deadletter.

Configuration comes from TOUCHPOINT_* environment variables (docs/operations.md). Without
TOUCHPOINT_KAFKA_BOOTSTRAP, `touchpoint run` starts an embedded broker of its own.
"""


#: Each module adds its commands; `touchpoint --help` lists them in this order.
COMMANDS = (worker, kafka, journey, simulate, demo)


def parser() -> argparse.ArgumentParser:
    """The argument parser, with help for every command."""
    p = argparse.ArgumentParser(
        prog="touchpoint",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `touchpoint` console script."""
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, EmbeddedBrokerError) as exc:
        print(f"touchpoint: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:
        # After connecting: a broker that went away, refused a request or timed out.
        print(f"touchpoint: Kafka: {exc}", file=sys.stderr)
        return 1
