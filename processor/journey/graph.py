"""A journey as a Mermaid flowchart: stages and their moves, and what triggers each rule."""

from __future__ import annotations

from typing import Any

import yaml

from processor.journey.definition import ERASED, Journey, Step


def _q(text: str) -> str:
    # Mermaid labels are double-quoted; a quote inside one is written as an entity.
    return '"' + text.replace('"', "#quot;") + '"'


def _cond(source: Any) -> str:
    # YAML flow style reads like the file: {nps: {lte: 6}}.
    return str(yaml.safe_dump(source, default_flow_style=True, width=1000)).strip()


def _limit(step: Step) -> str:
    limit = step.limit
    if isinstance(limit, str):
        return "" if limit == "always" else f" ({limit.replace('_', ' ')})"
    span = _span(limit.every.total_seconds())
    return f" (at most once per {span}{' per key' if limit.per_key else ''})"


def _what(step: Step) -> str:
    if step.mark is not None:
        return f"counts {step.mark.replace('_', ' ')}"
    return f"{step.action} {step.template} via {step.channel}"


def mermaid(journey: Journey) -> str:
    """The Mermaid source (flowchart) of the journey's stages, transitions and rules."""
    lines = ["flowchart LR", "  start((start)) --> " + journey.initial_stage]
    lines += [f"  {stage}([{_q(stage)}])" for stage in journey.stages]
    for t in journey.transitions:
        if t.after is not None:
            since = "purchase" if t.since == "last_purchase" else "entry"
            label = f"{t.name}: {_span(t.after.total_seconds())} after {since}"
        else:
            label = f"{t.name}: {', '.join(e.value for e in t.on)}"
            if t.if_.source:
                label += f" if {_cond(t.if_.source)}"
        for source in t.from_:
            lines.append(f"  {source} -->|{_q(label)}| {t.to}")
    lines.append(f"  anywhere((any stage)) -.->|{_q('erase_customer')}| {ERASED}")
    lines.append(f"  subgraph rules [{_q('rules')}]")
    for s in journey.steps:
        trigger = (
            f"{_span(s.after.total_seconds())} after the previous step"
            if s.after is not None
            else ", ".join(sorted(e.value for e in s.on)) or f"entering {', '.join(s.on_enter)}"
        )
        wait = f", wait {_span(s.wait.total_seconds())}" if s.wait is not None else ""
        cancel = f", cancelled by {', '.join(sorted(s.cancel_on))}" if s.cancel_on else ""
        cond = f" if {_cond(s.when.source)}" if s.when.source else ""
        name = s.rule if s.name == s.rule else f"{s.rule} / {s.name}"
        text = f"{name}: {trigger}{cond}{wait}{cancel} → {_what(s)}{_limit(s)}"
        lines.append(f"    r_{s.name}{{{{{_q(text)}}}}}")
    lines.append("  end")
    for s in journey.steps:
        for stage in sorted(s.on_enter):
            lines.append(f"  {stage} -.->|{_q('on entry')}| r_{s.name}")
        if s.follow_up is not None:
            lines.append(f"  r_{s.name} -.->|{_q('then')}| r_{s.follow_up}")
    return "\n".join(lines) + "\n"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
