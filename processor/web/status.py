"""The status page at `/` and the /status.json it polls: funnel, rates, dead letters, lag."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from aiohttp.web import Response

from processor import __version__
from processor.journey.definition import ERASED
from processor.stream.app import Runtime
from processor.stream.observe import counter_total
from processor.web.status_page import PAGE

#: No external assets, ever: the page may only talk to its own worker.
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
)

Sample = tuple[float, float, float, float, float]


def rates(samples: Sequence[Sample]) -> dict[str, float | None]:
    """Per-second rates over the sampled window (None until two samples exist)."""
    names = ("consumed", "processed", "actions", "deadletters")
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return dict.fromkeys(names)
    first, last = samples[0], samples[-1]
    span_s = last[0] - first[0]
    return {name: (last[i] - first[i]) / span_s for i, name in enumerate(names, 1)}


def _by_label(metric: Any, label: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for family in metric.collect():
        for s in family.samples:
            if s.name.endswith("_total"):
                out[s.labels[label]] += int(s.value)
    return out


def _group(lag: dict[tuple[str, int], int]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for (topic, _), n in lag.items():
        out.setdefault(topic, []).append(n)
    return out


def snapshot(rt: Runtime) -> dict[str, Any]:
    """What the page shows, as plain JSON; no personal data, only counts."""
    m, obs = rt.metrics, rt.observer
    people = obs.stages.totals()
    # Erased people have no state left, so that stage is always empty: not part of the funnel.
    stages = [s for s in rt.journey.stages if s != ERASED]
    kinds = _by_label(m.deadletters, "kind")
    return {
        "version": __version__,
        "at": time.time(),
        "ready": rt.ready(),
        "partitions": sorted(obs.stages.partitions()),
        "funnel": [{"stage": s, "customers": max(0, people.get(s, 0))} for s in stages],
        "rates": rates(list(obs.samples)),
        "totals": {
            "consumed": counter_total(m.messages_consumed),
            "processed": counter_total(m.events_processed),
            "actions": counter_total(m.actions),
            "suppressed": counter_total(m.actions_suppressed),
            "deadletters": counter_total(m.deadletters),
        },
        "deadletters_by_kind": [
            {"kind": k, "count": n} for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]) if n
        ],
        "lag": [
            {"topic": topic, "partition": p, "lag": n} for (topic, p), n in sorted(obs.lag.items())
        ],
        "lag_by_topic": [
            {"topic": topic, "partitions": len(ps), "lag": sum(ps)}
            for topic, ps in sorted(_group(obs.lag).items())
        ],
        "lag_total": sum(obs.lag.values()),
    }


def install(rt: Runtime) -> None:
    """Register `/` and `/status.json`.

    Faust serves its own index blueprint at `/`, but blueprints are applied when the web server
    starts, and aiohttp resolves routes for one path in registration order, so these pages,
    registered now, answer first.
    """
    app = rt.app

    @app.page("/")
    async def status_page(web: Any, request: Any) -> Any:
        headers = {"Content-Security-Policy": _CSP, "Cache-Control": "no-store"}
        return Response(text=PAGE, content_type="text/html", charset="utf-8", headers=headers)

    @app.page("/status.json")
    async def status_json(web: Any, request: Any) -> Any:
        return web.json(snapshot(rt), headers={"Cache-Control": "no-store"})
