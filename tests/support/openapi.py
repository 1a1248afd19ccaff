"""Check an HTTP answer against the worker's OpenAPI document (draft 2020-12 schemas)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from processor.web.openapi import document

_URI = "urn:touchpoint:openapi"


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def check_answer(path: str, status: int, content_type: str, body: Any) -> None:
    """Raise unless `status` is documented for GET `path` and `body` matches its schema."""
    doc = document()
    responses = doc["paths"][path]["get"]["responses"]
    assert str(status) in responses, f"{status} is not documented for GET {path}"
    content = responses[str(status)]["content"]
    assert content_type in content, f"{content_type} is not documented for {status}"
    registry: Registry[Any] = Registry().with_resource(
        _URI, Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    ref = _pointer("paths", path, "get", "responses", str(status), "content", content_type)
    schema = {"$ref": f"{_URI}#/{ref}/schema"}
    Draft202012Validator(schema, registry=registry).validate(body)
