"""The demo's live summary, computed from a worker's /metrics text. Pure."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Snapshot:
    """The counters the summary needs, from one scrape."""

    consumed: float = 0.0
    processed: float = 0.0
    duplicates: float = 0.0
    cross_channel: float = 0.0
    timers_fired: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    actions: dict[str, float] = field(default_factory=dict)
    suppressed: dict[str, float] = field(default_factory=dict)
    deadletters: dict[str, float] = field(default_factory=dict)


def parse(text: str) -> Snapshot:
    """A snapshot of the worker's counters; people per stage = entries minus exits."""
    sums: defaultdict[str, float] = defaultdict(float)
    stages: defaultdict[str, float] = defaultdict(float)
    actions: defaultdict[str, float] = defaultdict(float)
    suppressed: defaultdict[str, float] = defaultdict(float)
    dead: defaultdict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not s.name.endswith("_total"):
                continue
            sums[s.name] += s.value
            if s.name == "touchpoint_transitions_total":
                stages[s.labels["to_stage"]] += s.value
                if s.labels["from_stage"] != "none":
                    stages[s.labels["from_stage"]] -= s.value
            elif s.name == "touchpoint_actions_total" and s.value:
                actions[s.labels["template"]] += s.value
            elif s.name == "touchpoint_actions_suppressed_total" and s.value:
                suppressed[s.labels["reason"]] += s.value
            elif s.name == "touchpoint_deadletters_total" and s.value:
                dead[s.labels["kind"]] += s.value
    return Snapshot(
        consumed=sums["touchpoint_messages_consumed_total"],
        processed=sums["touchpoint_events_processed_total"],
        duplicates=sums["touchpoint_duplicate_events_total"],
        cross_channel=sums["touchpoint_cross_channel_conversions_total"],
        timers_fired=sums["touchpoint_timers_fired_total"],
        stages=dict(stages),
        actions=dict(actions),
        suppressed=dict(suppressed),
        deadletters=dict(dead),
    )


def _counts(c: dict[str, float]) -> str:
    items = [f"{k} {int(v)}" for k, v in sorted(c.items()) if v]
    return ", ".join(items) if items else "none yet"


def title(sim_day: float, url: str) -> str:
    """The summary's heading: where the simulated clock is, and where the worker serves."""
    return f"touchpoint demo · simulated day {sim_day:.1f} · {url}"


def rows(now: Snapshot, before: Snapshot | None, interval_s: float) -> list[tuple[str, str]]:
    """The summary as (label, value) rows: rates, stages, actions, dead letters."""
    # The first summary has no earlier one: its rate covers the first interval from zero.
    earlier = before.consumed if before is not None else 0.0
    rate = (now.consumed - earlier) / interval_s if interval_s > 0 else 0.0
    order = ("awareness", "consideration", "purchase", "retention", "advocacy", "lapsed", "erased")
    stages = "  ".join(f"{s} {int(now.stages.get(s, 0))}" for s in order if s != "erased")
    return [
        ("inbound", f"{rate:6.1f} msg/s   consumed {int(now.consumed)}   "
                    f"processed {int(now.processed)}   duplicates {int(now.duplicates)}"),
        ("customers", stages),
        ("actions", _counts(now.actions)),
        ("held back", f"{_counts(now.suppressed)}   (policy: consent, caps, staleness)"),
        ("dead", _counts(now.deadletters)),
        ("timers fired", f"{int(now.timers_fired)}   "
                         f"store purchases after web/email {int(now.cross_channel)}"),
    ]  # fmt: skip


def render(
    now: Snapshot, before: Snapshot | None, interval_s: float, sim_day: float, url: str
) -> str:
    """The summary as plain lines, for output that is not a terminal."""
    lines = [f"── {title(sim_day, url)}"]
    lines += [f"   {label:<9} {value}" for label, value in rows(now, before, interval_s)]
    return "\n".join(lines)
