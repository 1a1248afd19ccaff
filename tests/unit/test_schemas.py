"""The published JSON Schemas: generated from the models, and checked in up to date."""

from pathlib import Path

import orjson

from processor import schemas
from processor.decode import decode_touchpoint
from processor.events import Channel, Touchpoint
from tests.unit.test_decode import NOW

SCHEMAS = Path(__file__).resolve().parents[2] / "topics" / "schemas"
NAMES = ["touchpoint-event", "action", "transition", "dead-letter", "control-command"]

# Copied verbatim from CONTRACT.md ("Touchpoint event (inbound)").
CONTRACT_EXAMPLE = b"""
{
  "event_id": "7f9c2b1e-4a8d-4a0e-9a51-2d8f5c3e1b90",
  "type": "cart_add",
  "occurred_at": "2026-11-22T12:00:00Z",
  "identity": {"customer_id": "C-1001", "anonymous_id": "ck-77f", "email": "ana@example.com", "loyalty_id": "L-555"},
  "context": {"timezone": "Europe/Berlin", "locale": "de-DE", "store_id": "S-12", "campaign_id": "fall-24"},
  "properties": {"product_id": "P-9", "category": "mugs", "quantity": 1, "price": 12.5, "currency": "EUR"}
}
"""  # noqa: E501 - kept byte for byte as the contract prints it


def test_checked_in_schemas_are_not_stale() -> None:
    assert schemas.stale(SCHEMAS) == []


def test_every_message_has_a_schema_with_id_and_title() -> None:
    generated = schemas.generate()
    assert list(generated) == NAMES
    for name, schema in generated.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"touchpoint-processor/{name}.schema.json"
        assert schema["title"]
        assert schema["description"]
        assert schema["type"] == "object"


def test_touchpoint_schema_has_one_rule_per_type() -> None:
    schema = schemas.generate()["touchpoint-event"]
    assert len(schema["allOf"]) == 24
    assert schema["allOf"][3] == {
        "if": {"properties": {"type": {"const": "cart_add"}}, "required": ["type"]},
        "then": {
            "properties": {
                "properties": {"$ref": "#/$defs/CartAddProperties"},
                "channel": {"enum": ["web", None]},
            }
        },
    }
    assert schema["$defs"]["CartAddProperties"]["required"] == ["product_id"]


def test_write_then_stale(tmp_path: Path) -> None:
    paths = schemas.write(tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{n}.schema.json" for n in NAMES)
    assert schemas.stale(tmp_path) == []
    text = (tmp_path / "action.schema.json").read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text.startswith('{\n  "$defs": {\n')
    (tmp_path / "action.schema.json").write_text(text.replace("Action", "Act"), encoding="utf-8")
    (tmp_path / "transition.schema.json").unlink()
    assert schemas.stale(tmp_path) == ["action.schema.json", "transition.schema.json"]


def test_contract_example_event_decodes() -> None:
    result = decode_touchpoint(CONTRACT_EXAMPLE, Channel.web, NOW, max_bytes=65536)
    assert isinstance(result, Touchpoint)
    assert result.model_dump(mode="json") == {
        "event_id": "7f9c2b1e-4a8d-4a0e-9a51-2d8f5c3e1b90",
        "type": "cart_add",
        "occurred_at": "2026-11-22T12:00:00Z",
        "channel": "web",
        "identity": {
            "customer_id": "C-1001",
            "email": "ana@example.com",
            "loyalty_id": "L-555",
            "anonymous_id": "ck-77f",
        },
        "context": {
            "timezone": "Europe/Berlin",
            "locale": "de-DE",
            "store_id": "S-12",
            "campaign_id": "fall-24",
        },
        "properties": orjson.loads(CONTRACT_EXAMPLE)["properties"],
    }
