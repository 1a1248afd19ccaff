"""`touchpoint simulate`: realistic multi-channel traffic from the seeds' personas."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from processor.cli.common import fraction, load_settings, positive_float, positive_int
from processor.cli.progress import progress

#: --output files start here unless --start says otherwise, so the seed alone fixes the bytes.
FILE_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _mix(text: str | None) -> dict[str, int] | None:
    """`cart_abandoner,lapser=2` -> {cart_abandoner: 1, lapser: 2}."""
    if not text:
        return None
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        out[name.strip()] = int(weight) if weight else 1
    return out


def _start(text: str | None, to_file: bool) -> datetime:
    if text is None or text == "now":
        return FILE_EPOCH if to_file and text is None else datetime.now(UTC)
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError("--start needs an offset, e.g. 2026-11-22T12:00:00Z")
    return at


def config_from(args: argparse.Namespace, max_event_bytes: int) -> Any:
    """The generator's config from the command line."""
    from processor.simulate import invalid
    from processor.simulate.generator import SimConfig
    from processor.simulate.personas import DEFAULT_MIX

    to_file = args.output is not None
    return SimConfig(
        start=_start(args.start, to_file),
        customers=args.customers,
        seed=args.seed,
        compression=args.time_compression,
        rate=args.rate,
        events=args.events,
        duration_s=args.duration,
        spread_s=args.spread_days * 86400.0,
        invalid_fraction=args.invalid_fraction,
        duplicate_fraction=args.duplicate_fraction,
        invalid_kinds=invalid.FILE_KINDS if to_file else invalid.KINDS,
        max_event_bytes=max_event_bytes,
        timezone=args.timezone,
        mix=_mix(args.personas) or dict(DEFAULT_MIX),
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    from processor.simulate.compress import write_compressed
    from processor.simulate.generator import SimMessage, Stats, generate
    from processor.simulate.publisher import Progress, publish, write_lines

    settings = load_settings()
    if args.write_journey is not None:
        path = write_compressed(settings.journey_file, args.time_compression, args.write_journey)
        print(f"wrote {path}: {settings.journey_file} compressed {args.time_compression:g}x")
        return 0
    config = config_from(args, settings.max_event_bytes)
    stats = Stats()
    if args.output is not None:
        with progress(f"writing {args.output.name}", config.events) as done:
            n = write_lines(args.output, generate(config, stats), None if args.quiet else done)
        print(f"wrote {n} message(s) to {args.output}", file=sys.stderr)
        return 0

    def messages(start: datetime) -> Iterator[SimMessage]:
        # Without --start the clock starts once the producer is connected.
        return generate(replace(config, start=start), stats)

    def show(p: Progress) -> None:
        if args.quiet:
            return
        bad = sum(stats.invalid.values())
        print(
            f"\rsent {p.sent} ({p.rate:.1f}/s): {stats.valid} valid, {stats.duplicates} "
            f"duplicate, {bad} invalid; {p.behind_s:.1f} s behind schedule ",
            end="",
            file=sys.stderr,
            flush=True,
        )

    start = None if args.start in (None, "now") else config.start
    sent = asyncio.run(publish(settings, messages, start=start, on_progress=show))
    if not args.quiet:
        print(file=sys.stderr)
    print(
        f"published {sent.sent} message(s): {stats.valid} valid, {stats.duplicates} "
        f"duplicate, {sum(stats.invalid.values())} invalid "
        f"({', '.join(f'{k} {v}' for k, v in sorted(stats.invalid.items())) or 'none'})",
        file=sys.stderr,
    )
    return 0


def register(sub: Any) -> None:
    """Add the command to the `touchpoint` parser."""
    sim = sub.add_parser(
        "simulate",
        help="publish realistic traffic from simulated customers",
        description="Publish touchpoints of simulated customers (personas from the seeds: cart "
        "abandoner, store researcher, loyal buyer, promoter, detractor, newsletter dropout, "
        "lapser) to the inbound topics, each at its time on a compressed clock: simulated "
        "time runs --time-compression times faster, and an event's occurred_at is the "
        "moment it is sent. Run the worker on the journey compressed by the same factor "
        "(--write-journey) so that its timers match. The same --seed (and --start) gives "
        "the same events, byte for byte.",
    )
    sim.add_argument("--customers", type=positive_int, default=100, help="simulated people (100)")
    sim.add_argument("--seed", type=int, default=1, help="random seed (1)")
    sim.add_argument(
        "--time-compression",
        type=positive_float,
        default=1440.0,
        metavar="X",
        help="simulated seconds per wall second (1440: a day in a minute)",
    )
    sim.add_argument("--rate", type=positive_float, default=None, help="at most this many events/s")
    stop = sim.add_mutually_exclusive_group()
    stop.add_argument(
        "--duration", type=positive_float, default=None, help="stop after SECONDS (wall)"
    )
    stop.add_argument("--events", type=positive_int, default=None, help="stop after N messages")
    sim.add_argument(
        "--spread-days",
        type=positive_float,
        default=1.0,
        help="customers' first touchpoints are spread over this many simulated days (1)",
    )
    sim.add_argument(
        "--personas",
        default=None,
        metavar="NAME[=W],...",
        help="persona mix, e.g. cart_abandoner=3,lapser (default: all, weighted)",
    )
    sim.add_argument("--invalid-fraction", type=fraction, default=0.0, metavar="F",
                     help="share of messages that are invalid, kinds in turn")  # fmt: skip
    sim.add_argument("--duplicate-fraction", type=fraction, default=0.0, metavar="F",
                     help="share of valid events sent twice (an upstream retry)")  # fmt: skip
    sim.add_argument("--timezone", default="Europe/Berlin", help="the customers' time zone")
    sim.add_argument(
        "--start",
        default=None,
        help="RFC 3339 start of the simulated clock; default now (publishing) or "
        f"{FILE_EPOCH:%Y-%m-%d} (--output, so the seed alone fixes the bytes)",
    )
    sim.add_argument("--output", type=Path, default=None, metavar="FILE",
                     help="write JSON lines (for `touchpoint publish`) instead of publishing; "
                     "no `decode` kind, which a JSON line cannot hold")  # fmt: skip
    sim.add_argument("--write-journey", type=Path, default=None, metavar="FILE",
                     help="only write TOUCHPOINT_JOURNEY_FILE compressed by "
                     "--time-compression to FILE, for the worker")  # fmt: skip
    sim.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    sim.set_defaults(func=cmd_simulate)
