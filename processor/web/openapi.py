"""The OpenAPI 3.1 description of the worker's HTTP API, generated from the response models."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from processor import __version__
from processor.web.customer import Customer, Problem

_JSON = "application/json"


def _problem(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _customer_path() -> dict[str, Any]:
    return {
        "get": {
            "operationId": "getCustomer",
            "summary": "One person's journey state, by any of their identifiers",
            "description": (
                "Any identifier linked to the person finds them, also one that never sent an "
                "event of its own. Answered by the worker that owns the person's partition; any "
                "worker accepts the request and asks the owners. Without `kind`, `{id}` is a "
                "canonical key: "
                "a `customer_id`, or `email:…`, `loyalty:…`, `anon:…`. With `kind`, `{id}` is a "
                "plain identifier of that kind (emails are matched after trimming and "
                "case-folding). The answer holds personal data and is never cached."
            ),
            "security": [{"bearer": []}],
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "description": "A canonical key, or a plain identifier with `kind`.",
                    "schema": {"type": "string", "minLength": 1},
                    "examples": {
                        "customer": {"value": "C-1001"},
                        "email": {"value": "email:ana@example.com"},
                    },
                },
                {
                    "name": "kind",
                    "in": "query",
                    "required": False,
                    "description": "The kind of a plain identifier in `{id}`.",
                    "schema": {
                        "type": "string",
                        "enum": ["customer_id", "email", "loyalty_id", "anonymous_id"],
                    },
                },
            ],
            "responses": {
                "200": {
                    "description": "The person's journey state.",
                    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Customer"}}},
                },
                "400": _problem("Not a valid identifier, or an unknown `kind`."),
                "401": _problem("No bearer token, or a malformed Authorization header."),
                "403": _problem("A bearer token, but not the configured one."),
                "404": _problem(
                    "`not_found`: no journey state for the identifier; `api_disabled`: "
                    "TOUCHPOINT_API_TOKEN is not set, so the API is off."
                ),
                "503": _problem("A rebalance is under way or the owning worker is away; retry."),
            },
        }
    }


def _open(summary: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    ok = {"description": description, "content": {_JSON: {"schema": schema}}}
    return {"get": {"summary": summary, "security": [], "responses": {"200": ok}}}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at /openapi.json."""
    _, top = models_json_schema(
        [(Customer, "serialization"), (Problem, "serialization")],
        ref_template="#/components/schemas/{model}",
    )
    ready = {
        "type": "object",
        "properties": {"ready": {"type": "boolean"}},
        "required": ["ready"],
    }
    ready_get = {
        "summary": "Partitions assigned and state recovered (no personal data)",
        "security": [],
        "responses": {
            "200": {"description": "Ready.", "content": {_JSON: {"schema": ready}}},
            "503": {"description": "Not ready yet.", "content": {_JSON: {"schema": ready}}},
        },
    }
    status = {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "touchpoint-processor worker API",
            "version": __version__,
            "description": "The HTTP API on every worker's TOUCHPOINT_WEB_PORT.",
        },
        "servers": [{"url": "http://127.0.0.1:6066", "description": "a local worker"}],
        "security": [{"bearer": []}],
        "paths": {
            "/customers/{id}": _customer_path(),
            "/health": _open("Alive (no personal data)", "The event loop answers.", status),
            "/ready": {"get": ready_get},
        },
        "components": {
            "schemas": top["$defs"],
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The value of TOUCHPOINT_API_TOKEN.",
                }
            },
        },
    }
