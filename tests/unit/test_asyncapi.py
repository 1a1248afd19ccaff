"""The AsyncAPI 3 document: generated from topics/ and the models, current, and valid."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from processor import asyncapi, schemas
from processor import topics as t
from processor.settings import REPO_ROOT
from tests.support.node_tools import validate_asyncapi

TOPICS = REPO_ROOT / "topics"
CHECKED_IN = TOPICS / asyncapi.FILENAME


def test_checked_in_document_is_current() -> None:
    assert CHECKED_IN.read_text(encoding="utf-8") == asyncapi.render(TOPICS), (
        "topics/asyncapi.yaml is stale: run `python -m processor.asyncapi`"
    )
    assert asyncapi.main(["--check", str(TOPICS)]) == 0


def test_one_channel_per_declared_topic_with_its_partitions_and_cleanup() -> None:
    doc = asyncapi.generate(TOPICS)
    specs = t.load(TOPICS)
    assert doc["asyncapi"] == "3.0.0"
    assert set(doc["channels"]) == set(specs)
    for name, spec in specs.items():
        binding = doc["channels"][name]["bindings"]["kafka"]
        assert doc["channels"][name]["address"] == name
        assert binding["partitions"] == spec.partitions
        policy = spec.config["cleanup.policy"].split(",")
        assert binding["topicConfiguration"]["cleanup.policy"] == policy
        if "retention.ms" in spec.config:
            retention = binding["topicConfiguration"]["retention.ms"]
            assert retention == int(spec.config["retention.ms"])


def test_operations_are_from_the_processors_point_of_view() -> None:
    doc = asyncapi.generate(TOPICS)
    actions: dict[str, set[str]] = {}
    for op in doc["operations"].values():
        channel = op["channel"]["$ref"].removeprefix("#/channels/")
        actions.setdefault(channel, set()).add(op["action"])
    assert actions[t.WEB] == actions[t.EMAIL] == actions[t.STORE] == {"receive"}
    assert actions[t.CONTROL] == {"receive"}
    assert actions[t.ACTIONS] == actions[t.TRANSITIONS] == actions[t.DEADLETTER] == {"send"}
    assert actions[t.CUSTOMER_EVENTS] == {"send", "receive"}


def test_message_payloads_are_the_published_json_schemas() -> None:
    doc = asyncapi.generate(TOPICS)
    components = doc["components"]["schemas"]
    published = schemas.generate()
    action = dict(published["action"])
    for key in ("$defs", "$schema", "$id"):
        action.pop(key)
    rewritten = orjson.dumps(action).replace(b"#/$defs/", b"#/components/schemas/")
    assert components["Action"] == orjson.loads(rewritten)
    message = doc["components"]["messages"]["touchpoint-event"]
    assert message["payload"] == {"$ref": "#/components/schemas/TouchpointEvent"}
    assert "$defs" not in orjson.dumps(doc).decode()


def test_the_asyncapi_parser_accepts_the_document() -> None:
    result = validate_asyncapi(CHECKED_IN)
    assert result.returncode == 0, result.stdout + result.stderr
    diagnostics = [orjson.loads(line) for line in result.stdout.splitlines()]
    problems = [d for d in diagnostics if d.get("severity") in (0, 1)]
    assert problems == []
    assert diagnostics[-1]["version"] == "3.0.0"


@pytest.mark.parametrize(
    ("path", "value"),
    [(("operations", "send_journey.actions", "action"), "publish"),
     (("channels", "journey.actions", "messages", "action", "$ref"), "#/components/messages/nope")],
)  # fmt: skip
def test_the_asyncapi_parser_rejects_a_broken_document(
    tmp_path: Path, path: tuple[str, ...], value: str
) -> None:
    doc = asyncapi.generate(TOPICS)
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = validate_asyncapi(broken)
    assert result.returncode == 1, result.stdout
