"""Create declared topics, report drift from `topics/`, and refuse to run without them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from processor.topics import TopicSpec

#: Config keys whose drift `topics check` reports; the rest of a declaration is informative.
CHECKED_CONFIG = ("cleanup.policy", "retention.ms")


@dataclass(frozen=True)
class Drift:
    """One difference between a declared topic and the broker's."""

    topic: str
    what: str
    declared: str
    actual: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.what} is {self.actual}, declared {self.declared}"


async def _describe(
    admin: AIOKafkaAdminClient, names: list[str]
) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    partitions: dict[str, int] = {}
    for meta in await admin.describe_topics(names):
        if meta.get("error_code", 0) == 0:
            partitions[meta["topic"]] = len(meta["partitions"])
    configs: dict[str, dict[str, str]] = {}
    present = [n for n in names if n in partitions]
    if present:
        resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in present]
        for response in await admin.describe_configs(resources):
            for resource in response.resources:
                name, entries = resource[3], resource[4]
                configs[name] = {entry[0]: entry[1] for entry in entries}
    return partitions, configs


async def drift(admin: AIOKafkaAdminClient, specs: dict[str, TopicSpec]) -> list[Drift]:
    """Every declared topic that is missing or differs in partitions or checked config."""
    existing = set(await admin.list_topics())
    found: list[Drift] = []
    names = sorted(n for n in specs if n in existing)
    partitions, configs = await _describe(admin, names) if names else ({}, {})
    for name, spec in sorted(specs.items()):
        if name not in existing:
            found.append(Drift(name, "existence", "present", "missing"))
            continue
        if partitions.get(name) != spec.partitions:
            found.append(Drift(name, "partitions", str(spec.partitions), str(partitions.get(name))))
        actual = configs.get(name, {})
        for key in CHECKED_CONFIG:
            if key in spec.config and actual.get(key, spec.config[key]) != spec.config[key]:
                found.append(Drift(name, key, spec.config[key], actual[key]))
    return found


async def apply(
    admin: AIOKafkaAdminClient, specs: dict[str, TopicSpec], replication_factor: int
) -> list[str]:
    """Create every declared topic that is missing; never alter or delete. Returns the created."""
    existing = set(await admin.list_topics())
    missing = [spec for name, spec in sorted(specs.items()) if name not in existing]
    if not missing:
        return []
    new = [
        NewTopic(s.name, s.partitions, replication_factor, topic_configs=dict(s.config))
        for s in missing
    ]
    response: Any = await admin.create_topics(new)
    errors = [
        f"{err[0]}: error {err[1]} {err[2] or ''}".strip()
        for err in response.topic_errors
        if err[1] not in (0, 36)  # 36: TOPIC_ALREADY_EXISTS (a concurrent apply won the race)
    ]
    if errors:
        raise RuntimeError("could not create topics: " + "; ".join(errors))
    await _until_visible(admin, {s.name: s.partitions for s in missing})
    return [s.name for s in missing]


async def _until_visible(
    admin: AIOKafkaAdminClient, want: dict[str, int], timeout_s: float = 30.0
) -> None:
    # CreateTopics returns before every broker's metadata shows the new partitions; a worker
    # started right after `apply` would otherwise see a topic with 0 partitions and refuse.
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        seen = {
            meta["topic"]: len(meta["partitions"])
            for meta in await admin.describe_topics(sorted(want))
            if meta.get("error_code", 0) == 0
        }
        if all(seen.get(name) == n for name, n in want.items()):
            return
        if asyncio.get_running_loop().time() > deadline:
            late = sorted(n for n in want if seen.get(n) != want[n])
            raise RuntimeError(f"created topics not visible after {timeout_s:.0f} s: {late}")
        await asyncio.sleep(0.1)


async def missing_or_wrong(
    admin: AIOKafkaAdminClient, specs: dict[str, TopicSpec], required: tuple[str, ...]
) -> list[str]:
    """Reasons the worker must not start: required topics missing or with wrong partitions."""
    problems = []
    for d in await drift(admin, {n: specs[n] for n in required if n in specs}):
        if d.what in ("existence", "partitions"):
            problems.append(str(d))
    problems += [f"{n}: not declared under topics/" for n in required if n not in specs]
    return problems
