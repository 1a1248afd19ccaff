"""Field types shared by the journey file's models: durations, actions, channels, strictness."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from processor.journey.yamlfile import DURATION_PATTERN, parse_duration

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration with its unit: 45s, 1h, 7d, 1h30m (ms, s, m, h, d, w).",
            "examples": ["45s", "1h", "7d"],
        }
    ),
]
ActionKind = Literal[
    "send_email",
    "send_sms",
    "send_push",
    "issue_coupon",
    "retarget_ad",
    "create_support_task",
    "tag_customer",
]
ActionChannel = Literal["email", "sms", "push", "ads", "crm"]


class Strict(BaseModel):
    """A frozen model that refuses unknown keys, so a typo in the file is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
