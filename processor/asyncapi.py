"""The AsyncAPI 3 document of the Kafka contract, generated from topics/ and the JSON Schemas."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from processor import __version__, schemas
from processor import topics as t

VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
FILENAME = "asyncapi.yaml"

#: The Kafka binding's topicConfiguration knows these; each converts its string from topics/.
_TOPIC_CONFIG: dict[str, Callable[[str], Any]] = {
    "cleanup.policy": lambda v: [p.strip() for p in v.split(",")],
    "retention.ms": int,
    "retention.bytes": int,
    "delete.retention.ms": int,
    "max.message.bytes": int,
}
_REF = re.compile(r"^#/\$defs/(.+)$")


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _rewrite_refs(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and (m := _REF.match(ref)):
            out["$ref"] = f"#/components/schemas/{m.group(1)}"
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def _schemas() -> tuple[dict[str, Any], dict[str, str]]:
    """All message schemas with their $defs hoisted into one map; and message name -> schema."""
    hoisted: dict[str, Any] = {}
    roots: dict[str, str] = {}
    for name, schema in schemas.generate().items():
        body = {k: v for k, v in schema.items() if k not in ("$defs", "$schema", "$id")}
        for def_name, definition in schema.get("$defs", {}).items():
            if hoisted.setdefault(def_name, definition) != definition:
                raise ValueError(f"two messages define {def_name} differently")
        root = "".join(part.capitalize() for part in name.split("-"))
        hoisted[root] = body
        roots[name] = root
    return {k: _rewrite_refs(v) for k, v in sorted(hoisted.items())}, roots


def _message(spec: t.TopicSpec, schema_of: dict[str, str]) -> tuple[str, dict[str, Any]]:
    key = {"type": "string", "description": spec.key}
    bindings = {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING}}
    if spec.value in schema_of:
        payload = {"$ref": f"#/components/schemas/{schema_of[spec.value]}"}
        return spec.value, {"name": spec.value, "payload": payload, "bindings": bindings}
    name = spec.name.removeprefix(f"{t.APP_ID}-")
    internal = {"description": f"Internal: {spec.value}. No contract; only the processor reads it."}
    return name, {"name": name, "payload": internal, "bindings": bindings}


def _channel(spec: t.TopicSpec, message_id: str) -> dict[str, Any]:
    config = {k: conv(spec.config[k]) for k, conv in _TOPIC_CONFIG.items() if k in spec.config}
    binding: dict[str, Any] = {"topic": spec.name, "partitions": spec.partitions}
    if config:
        binding["topicConfiguration"] = config
    binding["bindingVersion"] = KAFKA_BINDING
    return {
        "address": spec.name,
        "title": spec.name,
        "description": f"{spec.role.capitalize()} topic. Key: {spec.key}.",
        "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
        "bindings": {"kafka": binding},
    }


def _operation(action: str, spec: t.TopicSpec, message_id: str) -> dict[str, Any]:
    verb = "Reads" if action == "receive" else "Writes"
    return {
        "action": action,
        "title": f"{verb} {spec.name}",
        "channel": {"$ref": f"#/channels/{spec.name}"},
        "messages": [{"$ref": f"#/channels/{spec.name}/messages/{message_id}"}],
    }


_ACTIONS = {"inbound": ("receive",), "outbound": ("send",), "internal": ("send", "receive")}


def generate(topics_dir: Path) -> dict[str, Any]:
    """The AsyncAPI 3 document: one channel per declared topic, operations as the processor acts."""
    schema_map, schema_of = _schemas()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in sorted(t.load(topics_dir).values(), key=lambda s: s.name):
        message_id, message = _message(spec, schema_of)
        messages[message_id] = message
        channels[spec.name] = _channel(spec, message_id)
        for action in _ACTIONS[spec.role]:
            operations[f"{action}_{spec.name}"] = _operation(action, spec, message_id)
    return {
        "asyncapi": VERSION,
        "info": {
            "title": "touchpoint-processor",
            "version": __version__,
            "description": (
                "The Kafka contract of touchpoint-processor, from the processor's point of view: "
                "it receives touchpoint events and control commands, and sends actions, stage "
                "transitions and dead letters. Generated from topics/ and the wire models."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:19092",
                "protocol": "kafka",
                "description": "`make run`'s embedded broker (PLAINTEXT).",
            },
            "production": {
                "host": "{bootstrap}",
                "protocol": "kafka-secure",
                "description": "A Kafka cluster with SASL_SSL and SCRAM (TOUCHPOINT_KAFKA_*).",
                "variables": {"bootstrap": {"description": "TOUCHPOINT_KAFKA_BOOTSTRAP"}},
                "security": [{"$ref": "#/components/securitySchemes/scram"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schema_map,
            "messages": dict(sorted(messages.items())),
            "securitySchemes": {
                "scram": {
                    "type": "scramSha512",
                    "description": "SASL/SCRAM over TLS; SCRAM-SHA-256 works the same way.",
                }
            },
        },
    }


def render(topics_dir: Path) -> str:
    """The document as YAML, in a stable order, so a contract change is a readable diff."""
    header = (
        "# Generated by `python -m processor.asyncapi` from topics/ and the models; do not edit.\n"
    )
    body = yaml.safe_dump(generate(topics_dir), sort_keys=False, width=100, allow_unicode=True)
    return header + body


def main(argv: list[str]) -> int:
    """`python -m processor.asyncapi [--check] [TOPICS_DIR]`: write or check the document."""
    check = "--check" in argv
    rest = [a for a in argv if a != "--check"]
    topics_dir = Path(rest[0]) if rest else Path("topics")
    path = topics_dir / FILENAME
    text = render(topics_dir)
    if check:
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is stale: run `python -m processor.asyncapi`", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
