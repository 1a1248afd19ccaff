"""JSON Schemas generated from the models: the wire contract's, kept in topics/schemas/, and the
journey file's (beside the shipped journey), which editors use to complete and check one."""

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from processor.events import CHANNELS_OF, PROPERTIES_OF, ControlCommand, EventType, Touchpoint
from processor.messages import Action, DeadLetter, Transition

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_PREFIX = "touchpoint-processor/"

Mode = Literal["validation", "serialization"]

# name -> (model, mode, title, description). Inbound messages are described as this processor
# accepts them (validation), outbound ones as it writes them (serialization).
_MESSAGES: dict[str, tuple[type[BaseModel], Mode, str, str]] = {
    "action": (
        Action,
        "serialization",
        "Action",
        "A follow-up for a downstream sender, on journey.actions, keyed by customer_id.",
    ),
    "transition": (
        Transition,
        "serialization",
        "Stage transition",
        "A person moving between journey stages, on journey.transitions, keyed by customer_id.",
    ),
    "dead-letter": (
        DeadLetter,
        "serialization",
        "Dead letter",
        "An inbound message that could not be processed, on touchpoints.deadletter, keyed as "
        "received.",
    ),
    "control-command": (
        ControlCommand,
        "validation",
        "Control command",
        "An ops or privacy instruction, on journey.control, keyed by customer_id.",
    ),
}


def _header(name: str, title: str, description: str) -> dict[str, Any]:
    return {
        "$schema": DRAFT,
        "$id": f"{ID_PREFIX}{name}.schema.json",
        "title": title,
        "description": description,
    }


def _touchpoint() -> dict[str, Any]:
    # Touchpoint.properties is a plain object to pydantic; which properties a type needs is
    # checked in a validator. Spell that out as one if/then per type, so that the published
    # schema rejects what the processor rejects.
    models: list[tuple[type[BaseModel], Mode]] = [(Touchpoint, "validation")]
    models += [(model, "validation") for model in PROPERTIES_OF.values()]
    refs, top = models_json_schema(models, ref_template="#/$defs/{model}")
    defs = top["$defs"]
    schema: dict[str, Any] = defs.pop("Touchpoint")
    rules = []
    for event_type in EventType:
        channels = sorted(channel.value for channel in CHANNELS_OF[event_type])
        then: dict[str, Any] = {
            "properties": {
                "properties": refs[(PROPERTIES_OF[event_type], "validation")],
                "channel": {"enum": [*channels, None]},
            }
        }
        if event_type is EventType.loyalty_signup:
            then["properties"]["identity"] = {
                "anyOf": [{"required": ["customer_id"]}, {"required": ["email"]}]
            }
        rules.append(
            {
                "if": {"properties": {"type": {"const": event_type.value}}, "required": ["type"]},
                "then": then,
            }
        )
    schema["allOf"] = rules
    schema["$defs"] = defs
    return {
        **schema,
        **_header(
            "touchpoint-event",
            "Touchpoint event",
            "One customer interaction, on touchpoints.web, touchpoints.email or "
            "touchpoints.store, keyed by any identifier of the person. The topic implies the "
            "channel; occurred_at may be at most 5 minutes in the future.",
        ),
    }


def generate() -> dict[str, dict[str, Any]]:
    """Every wire message's JSON Schema (draft 2020-12), by file name stem."""
    schemas = {"touchpoint-event": _touchpoint()}
    for name, (model, mode, title, description) in _MESSAGES.items():
        schema = model.model_json_schema(mode=mode, ref_template="#/$defs/{model}")
        schemas[name] = {**schema, **_header(name, title, description)}
    return schemas


def _render(schema: dict[str, Any]) -> str:
    # Sorted and indented so that a change to the contract is a readable diff.
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _files() -> dict[str, str]:
    return {f"{name}.schema.json": _render(schema) for name, schema in generate().items()}


#: The journey file's schema, shipped beside the `lifecycle` journey that names it.
JOURNEY_SCHEMA = Path(__file__).resolve().parent / "journey" / "journey.schema.json"


def journey_schema() -> dict[str, Any]:
    """The journey file's JSON Schema (draft 2020-12): its keys, types, durations and enums."""
    from processor.journey.definition import Journey

    schema = Journey.model_json_schema(mode="validation", by_alias=True)
    return {
        **schema,
        **_header(
            "journey",
            "Journey file",
            "A touchpoint-processor journey: stages, transitions, rules and policies "
            "(`touchpoint journey validate` checks what a schema cannot: stage names, "
            "conditions, parameters).",
        ),
    }


def write_journey_schema(path: Path = JOURNEY_SCHEMA) -> Path:
    """Write the journey file's schema; returns its path."""
    path.write_text(_render(journey_schema()), encoding="utf-8", newline="\n")
    return path


def journey_schema_stale(path: Path = JOURNEY_SCHEMA) -> bool:
    """Whether the journey file's schema at `path` is missing or differs from the models."""
    return not path.is_file() or path.read_text(encoding="utf-8") != _render(journey_schema())


def write(directory: Path) -> list[Path]:
    """Write `<name>.schema.json` for every message into `directory`; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, text in _files().items():
        path = directory / filename
        path.write_text(text, encoding="utf-8", newline="\n")
        paths.append(path)
    return paths


def stale(directory: Path) -> list[str]:
    """File names in `directory` that are missing or differ from what `write` would produce."""
    out = []
    for filename, text in _files().items():
        path = directory / filename
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            out.append(filename)
    return out
