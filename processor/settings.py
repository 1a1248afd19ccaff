"""The one settings object: every knob, read from `TOUCHPOINT_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The package's folder, and the repository's (a checkout's; meaningless in an installed wheel).
PACKAGE = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE.parent
#: Shipped with the package: the `lifecycle` journey, and the topic declarations and schemas
#: (`processor/topic_files` is a link to the repository's `topics/`, copied into the wheel).
DEFAULT_JOURNEY_FILE = PACKAGE / "journey" / "lifecycle.yaml"
DEFAULT_TOPICS_DIR = PACKAGE / "topic_files"


class Settings(BaseSettings):
    """How a worker connects, where it keeps state, and how it behaves.

    Every field is read from the environment variable `TOUCHPOINT_<FIELD>` (upper case).
    This class is the reference configuration: docs/operations.md's table is generated from it.
    """

    model_config = SettingsConfigDict(
        env_prefix="TOUCHPOINT_", frozen=True, extra="forbid", validate_default=True
    )

    kafka_bootstrap: str | None = Field(
        default=None,
        description=(
            "Kafka bootstrap servers, comma separated (`host:port,host:port`). "
            "Unset: `touchpoint run` starts the embedded broker and uses it."
        ),
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Security protocol for every Kafka connection."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(
        default=None, description="SASL user name (PLAIN, SCRAM)."
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (PLAIN, SCRAM; never logged)."
    )
    kafka_oauth_token_url: str | None = Field(
        default=None,
        description=(
            "OAUTHBEARER: the identity provider's token endpoint; the worker gets its tokens "
            "there with the OAuth 2.0 client credentials grant and renews them before expiry."
        ),
    )
    kafka_oauth_client_id: str | None = Field(
        default=None, description="OAUTHBEARER: the client id at the token endpoint."
    )
    kafka_oauth_client_secret: SecretStr | None = Field(
        default=None, description="OAUTHBEARER: the client secret (never logged)."
    )
    kafka_oauth_scope: str | None = Field(
        default=None, description="OAUTHBEARER: the scope to ask for, if the provider needs one."
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle that signs the brokers' certificates (SSL, SASL_SSL)."
    )
    kafka_ssl_certfile: Path | None = Field(
        default=None,
        description="Mutual TLS: this client's certificate (PEM; SSL, SASL_SSL).",
    )
    kafka_ssl_keyfile: Path | None = Field(
        default=None,
        description="Mutual TLS: the certificate's key (PEM), unless the certfile holds it.",
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None, description="Mutual TLS: the private key's password (never logged)."
    )
    embedded_broker_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of the embedded broker on 127.0.0.1; 0 picks a free one.",
    )
    topics_dir: Path = Field(
        default=DEFAULT_TOPICS_DIR,
        description=(
            "Folder of the declarative topic definitions (`*.yaml`). Default: the ones shipped "
            "with the package (the repository's `topics/`)."
        ),
    )
    topic_replication_factor: int = Field(
        default=1,
        ge=1,
        description="Replication factor used by `touchpoint topics apply` for new topics.",
    )
    journey_file: Path = Field(
        default=DEFAULT_JOURNEY_FILE,
        description="The journey definition (YAML). Default: the shipped `lifecycle` journey.",
    )
    data_dir: Path = Field(
        default=Path("data"),
        description="Where the worker keeps its local table state (RocksDB). Keep it on a volume.",
    )
    store: Literal["rocksdb", "memory"] = Field(
        default="rocksdb",
        description=(
            "Local table store. `rocksdb` (via rocksdict) survives restarts and only replays "
            "the changelog's tail; `memory` rebuilds from the changelog at every start."
        ),
    )
    web_host: str = Field(
        default="127.0.0.1", description="Address the worker's HTTP server binds."
    )
    web_port: int = Field(
        default=6066, ge=0, le=65535, description="Port of /metrics, /health, /ready and the API."
    )
    max_event_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Inbound messages larger than this (bytes) are dead-lettered as `too_large`.",
    )
    rebalance_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How long the group coordinator waits for members to rejoin a rebalance.",
    )
    session_timeout_s: float = Field(
        default=10.0,
        ge=6,
        description=(
            "A worker that sends no heartbeat for this long is dropped from the group. "
            "Kafka's group.min.session.timeout.ms is 6 s, the floor; the embedded broker "
            "holds every group join for half of this, so short keeps start-up quick."
        ),
    )
    timer_tick_s: float = Field(
        default=1.0,
        gt=0,
        description=(
            "How often a worker looks for due timers. A timer fires at most this much late "
            "(plus processing), or a rebalance's recovery time late after a move."
        ),
    )
    timer_resend_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "A due timer whose firing was requested but not yet processed is requested again "
            "after this long (the request may have been lost in a crash)."
        ),
    )
    timer_batch: int = Field(
        default=5000,
        ge=1,
        description="At most this many people's timers are requested per tick.",
    )
    commit_interval_s: float = Field(
        default=1.0,
        gt=0,
        description=(
            "Ingest and the identity and journey agents commit the offsets their checkpoints "
            "completed at once, then at most this often while more complete (each commit is "
            "a round trip to the broker), and before partitions move or the worker stops. "
            "Shorter means fewer replays after a crash, longer means less overhead."
        ),
    )
    batch_max: int = Field(
        default=500,
        ge=1,
        description=(
            "Ingest handles at most this many inbound messages per fetch, and the identity "
            "and journey agents at most this many per checkpoint (theirs ends when it is "
            "full or when no further message waits). At a checkpoint the outputs are awaited "
            "until Kafka acknowledged them, then each changed key's changelog record (in the "
            "agents that keep tables) is sent once (Kafka Streams' record cache), then the "
            "offsets are committed. 1 commits after every message (slower; the outputs are "
            "the same)."
        ),
    )
    erasure_fence_s: float = Field(
        default=86400.0,
        ge=0,
        description=(
            "After an `erase_customer`, events of the erased person that occurred before the "
            "request and arrive this long after it (still queued on other partitions) are "
            "dropped instead of starting a new person. 0 turns the fence off."
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Worker log level."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description=(
            "`json`: one JSON object a line (time, level, logger, message; topic, partition "
            "and offset when a line is about one record), for log pipelines."
        ),
    )
    api_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token of the customer API (`GET /customers/{id}`), compared in constant "
            "time; never logged. Unset: the API is off and answers 404."
        ),
    )

    @model_validator(mode="after")
    def _credentials_complete(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        oauth = ("kafka_oauth_token_url", "kafka_oauth_client_id", "kafka_oauth_client_secret")
        if sasl and self.kafka_sasl_mechanism == "OAUTHBEARER":
            missing = [f"TOUCHPOINT_{f.upper()}" for f in oauth if getattr(self, f) is None]
            if missing:
                raise ValueError(f"OAUTHBEARER needs {', '.join(missing)}")
        elif sasl and (self.kafka_sasl_username is None or self.kafka_sasl_password is None):
            raise ValueError(
                f"{self.kafka_sasl_mechanism} needs TOUCHPOINT_KAFKA_SASL_USERNAME and "
                "TOUCHPOINT_KAFKA_SASL_PASSWORD"
            )
        if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
            raise ValueError("TOUCHPOINT_KAFKA_SSL_KEYFILE needs TOUCHPOINT_KAFKA_SSL_CERTFILE")
        return self


def reference_markdown() -> str:
    """The configuration reference as a Markdown table, generated from the fields above."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.default
        if isinstance(default, Path) and default.is_relative_to(PACKAGE):
            shown = "(shipped)"
        elif isinstance(default, Path):
            shown = f"`{default}`"
        elif default is None:
            shown = "(unset)"
        else:
            shown = f"`{default}`"
        rows.append(f"| `TOUCHPOINT_{name.upper()}` | {shown} | {info.description} |")
    return "\n".join(rows) + "\n"
