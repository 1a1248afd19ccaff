"""Topic names used by the code, and the loader of their declarations under `topics/`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

#: Faust's application id. Internal topic names derive from it, so it is fixed, not a setting.
APP_ID = "touchpoint-processor"
#: The consumer group of the workers' ingest (stream/agents/ingest.py); the agents' group is APP_ID.
INGEST_GROUP = f"{APP_ID}-ingest"

WEB = "touchpoints.web"
EMAIL = "touchpoints.email"
STORE = "touchpoints.store"
DEADLETTER = "touchpoints.deadletter"
ACTIONS = "journey.actions"
TRANSITIONS = "journey.transitions"
CONTROL = "journey.control"

#: Faust names a table's changelog `<app id>-<table name>-changelog`.
JOURNEY_TABLE = "journey"
CUSTOMER_EVENTS = f"{APP_ID}-customer-events"
JOURNEY_CHANGELOG = f"{APP_ID}-{JOURNEY_TABLE}-changelog"
GRAPH_TABLE = "identity-graph"
IDENTITY_LINKS = f"{APP_ID}-identity-links"
GRAPH_CHANGELOG = f"{APP_ID}-{GRAPH_TABLE}-changelog"
ALIAS_TABLE = "aliases"
IDENTITY_ROUTES = f"{APP_ID}-identity-routes"
ALIAS_CHANGELOG = f"{APP_ID}-{ALIAS_TABLE}-changelog"

INBOUND = (WEB, EMAIL, STORE)


def group_of(topic: str) -> str:
    """The consumer group of the workers that reads `topic`: ingest's for the inbound topics
    and the control topic, the agents' for the internal ones."""
    return INGEST_GROUP if topic in (*INBOUND, CONTROL) else APP_ID


#: Every topic the worker reads or writes; it refuses to start while one is missing.
ALL = (
    WEB,
    EMAIL,
    STORE,
    DEADLETTER,
    ACTIONS,
    TRANSITIONS,
    CONTROL,
    CUSTOMER_EVENTS,
    JOURNEY_CHANGELOG,
    IDENTITY_LINKS,
    GRAPH_CHANGELOG,
    IDENTITY_ROUTES,
    ALIAS_CHANGELOG,
)

Role = Literal["inbound", "outbound", "internal"]
#: Files under topics/ that describe the contract but declare no topic.
NOT_DECLARATIONS = frozenset({"asyncapi.yaml"})


class TopicDeclarationError(ValueError):
    """A file under `topics/` does not describe a topic correctly."""


@dataclass(frozen=True)
class TopicSpec:
    """One declared topic: what `touchpoint topics apply` creates and `check` compares."""

    name: str
    role: Role
    partitions: int
    key: str
    value: str
    config: dict[str, str] = field(default_factory=dict)
    copartition: str | None = None
    path: Path | None = None


_REQUIRED = ("name", "role", "partitions", "key", "value")
_ALLOWED = {*_REQUIRED, "config", "copartition"}


def _spec_from(path: Path, data: Any) -> TopicSpec:
    if not isinstance(data, dict):
        raise TopicDeclarationError(f"{path}: expected a mapping of topic fields")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise TopicDeclarationError(f"{path}: missing {', '.join(missing)}")
    unknown = sorted(set(data) - _ALLOWED)
    if unknown:
        raise TopicDeclarationError(f"{path}: unknown field(s) {', '.join(unknown)}")
    if data["role"] not in ("inbound", "outbound", "internal"):
        raise TopicDeclarationError(f"{path}: role must be inbound, outbound or internal")
    partitions = data["partitions"]
    if not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1:
        raise TopicDeclarationError(f"{path}: partitions must be a positive integer")
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise TopicDeclarationError(f"{path}: config must be a mapping")
    return TopicSpec(
        name=str(data["name"]),
        role=data["role"],
        partitions=partitions,
        key=str(data["key"]),
        value=str(data["value"]),
        config={str(k): str(v) for k, v in config.items()},
        copartition=data.get("copartition"),
        path=path,
    )


def load(directory: Path) -> dict[str, TopicSpec]:
    """Read every `*.yaml` in `directory` (not below it) into specs keyed by topic name."""
    if not directory.is_dir():
        raise TopicDeclarationError(f"{directory}: no such folder of topic declarations")
    specs: dict[str, TopicSpec] = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name in NOT_DECLARATIONS:
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise TopicDeclarationError(f"{path}: not valid YAML: {exc}") from exc
        spec = _spec_from(path, data)
        if spec.name in specs:
            raise TopicDeclarationError(f"{path}: topic {spec.name} is declared twice")
        specs[spec.name] = spec
    return specs


#: Kafka's default `max.message.bytes` (a topic's largest record batch, about 1 MB).
KAFKA_MAX_MESSAGE_BYTES = 1_048_588


def record_limit(spec: TopicSpec) -> int:
    """The largest record batch the topic takes: its declared `max.message.bytes`, else
    Kafka's default (a broker configured lower still refuses more)."""
    return int(spec.config.get("max.message.bytes", KAFKA_MAX_MESSAGE_BYTES))


_DAY_MS = 86_400_000
#: Kafka's topic defaults for the settings that bound how long a record stays.
_KAFKA_DEFAULTS = {
    "retention.ms": 7 * _DAY_MS,
    "segment.ms": 7 * _DAY_MS,
    "delete.retention.ms": _DAY_MS,
}


def kept_at_most(spec: TopicSpec) -> timedelta | None:
    """The longest a record written to this topic can stay in it, by its declared settings
    (Kafka's defaults where unset); None when nothing bounds it.

    Records go by whole segments, and a segment is only deleted or compacted once it rolled:
    a deleting topic keeps a record its retention plus a segment's life; a compacted one
    until compaction replaces it (a segment's life plus `max.compaction.lag.ms`, unbounded
    when unset) and then keeps the tombstone `delete.retention.ms`.
    """

    def ms(name: str) -> int | None:
        raw = spec.config.get(name)
        value = _KAFKA_DEFAULTS.get(name) if raw is None else int(raw)
        return None if value is None or value < 0 else value

    policy = {p.strip() for p in spec.config.get("cleanup.policy", "delete").split(",")}
    bounds: list[int] = []
    segment, retention = ms("segment.ms"), ms("retention.ms")
    if "delete" in policy and segment is not None and retention is not None:
        bounds.append(retention + segment)
    lag, tombstones = ms("max.compaction.lag.ms"), ms("delete.retention.ms")
    if "compact" in policy and segment is not None and lag is not None and tombstones is not None:
        bounds.append(segment + lag + tombstones)
    return timedelta(milliseconds=min(bounds)) if bounds else None


def copies_gone_within(specs: dict[str, TopicSpec]) -> timedelta | None:
    """The longest any declared topic keeps a record (`kept_at_most`); None if one is unbounded."""
    kept = [kept_at_most(spec) for spec in specs.values()]
    bounded = [k for k in kept if k is not None]
    return max(bounded) if bounded and len(bounded) == len(kept) else None


def copartition_problems(specs: dict[str, TopicSpec]) -> list[str]:
    """Name every co-partitioned group whose topics do not share one partition count."""
    groups: dict[str, dict[str, int]] = {}
    for spec in specs.values():
        if spec.copartition:
            groups.setdefault(spec.copartition, {})[spec.name] = spec.partitions
    return [
        f"co-partitioned group {group!r} mixes partition counts: "
        + ", ".join(f"{n}={p}" for n, p in sorted(members.items()))
        for group, members in sorted(groups.items())
        if len(set(members.values())) > 1
    ]
