"""The customer API's pure parts: identifiers, the bearer check, the answer and its OpenAPI."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from pydantic import ValidationError

from processor.journey.state import CustomerState
from processor.web.api import check_bearer, parse_identifier, resolve
from processor.web.customer import customer_from_state
from processor.web.openapi import document
from tests.support.openapi import check_answer


def test_openapi_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises on any violation of the OpenAPI 3.1 meta-schema
    assert set(doc["paths"]) == {"/customers/{id}", "/health", "/ready"}
    assert doc["paths"]["/health"]["get"]["security"] == []


@pytest.mark.parametrize(
    ("raw", "kind", "expected"),
    [
        ("C-1001", None, ("customer_id", "C-1001")),
        ("email:ana@example.com", None, ("email", "ana@example.com")),
        ("loyalty:L-555", None, ("loyalty_id", "L-555")),
        ("anon:ck-77f", None, ("anonymous_id", "ck-77f")),
        ("Ana@Example.com ", "email", ("email", "Ana@Example.com ")),
        ("email:odd", "customer_id", ("customer_id", "email:odd")),
    ],
)
def test_parse_identifier(raw: str, kind: str | None, expected: tuple[str, str]) -> None:
    assert parse_identifier(raw, kind) == expected


def test_parse_identifier_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        parse_identifier("x", "phone")


def test_resolve_names_the_identifiers_graph_node() -> None:
    # The node the identity agents use, normalised as on events; its person is then looked up.
    assert resolve("customer_id", "C-1") == "c:C-1"
    assert resolve("email", "  Ana@Example.COM ") == "e:ana@example.com"
    assert resolve("loyalty_id", "L-5") == "l:L-5"
    assert resolve("anonymous_id", "ck") == "a:ck"
    with pytest.raises(ValidationError):
        resolve("email", "   ")


@pytest.mark.parametrize(
    ("token", "header", "status", "error"),
    [
        (None, "Bearer s3cret", 404, "api_disabled"),
        ("s3cret", None, 401, "unauthorized"),
        ("s3cret", "", 401, "unauthorized"),
        ("s3cret", "Bearer", 401, "unauthorized"),
        ("s3cret", "Bearer   ", 401, "unauthorized"),
        ("s3cret", "Basic czNjcmV0", 401, "unauthorized"),
        ("s3cret", "s3cret", 401, "unauthorized"),
        ("s3cret", "Bearer wrong", 403, "forbidden"),
        ("s3cret", "Bearer s3cret-", 403, "forbidden"),
    ],
)
def test_bearer_check_denies(
    token: str | None, header: str | None, status: int, error: str
) -> None:
    denied = check_bearer(token, header)
    assert denied is not None
    assert (denied[0], denied[1].error) == (status, error)
    assert token is None or token not in denied[1].detail


@pytest.mark.parametrize("header", ["Bearer s3cret", "bearer s3cret", "Bearer  s3cret "])
def test_bearer_check_admits_the_token(header: str) -> None:
    assert check_bearer("s3cret", header) is None


def test_customer_answer_from_state_matches_the_openapi_schema() -> None:
    state = CustomerState(
        customer_id="email:ana@example.com",
        stage="consideration",
        stage_since=1_790_000_100.0,
        history=[("awareness", 1_790_000_000.0), ("consideration", 1_790_000_100.0)],
        consent={"email": True},
        fired={"welcome": 1_790_000_050.0, "abandoned_cart|e17": 1_790_000_090.0},
        timers={"wait:abandoned_cart:e17": (1_790_003_700.0, "abandoned_cart", {"x": 1})},
        identifiers=["email:ana@example.com", "anonymous_id:ck-77f"],
    )
    body = customer_from_state(state, "lifecycle").model_dump(mode="json")
    check_answer("/customers/{id}", 200, "application/json", body)
    assert body["stage_history"][0] == {"stage": "awareness", "entered_at": "2026-09-21T14:13:20Z"}
    assert body["pending_timers"] == [
        {"id": "wait:abandoned_cart:e17", "name": "abandoned_cart", "due": "2026-09-21T15:15:00Z"}
    ]
    assert [a["step"] for a in body["recent_actions"]] == ["abandoned_cart", "welcome"]
    assert body["recent_actions"][0]["key"] == "e17"
    assert body["consent"] == {"email": True, "sms": None, "push": None, "email_blocked": False}
    assert body["linked_identifiers"] == [
        {"kind": "email", "value": "ana@example.com"},
        {"kind": "anonymous_id", "value": "ck-77f"},
    ]
