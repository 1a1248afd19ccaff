"""Connection options shared by every aiokafka client the processor creates."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr

from processor.kafka.oauth import ClientCredentials
from processor.settings import Settings


def bootstrap_of(settings: Settings) -> str:
    """The configured bootstrap servers; a clear error when there are none."""
    if not settings.kafka_bootstrap:
        raise ValueError(
            "no Kafka bootstrap servers configured: set TOUCHPOINT_KAFKA_BOOTSTRAP=host:port"
        )
    return settings.kafka_bootstrap


def _path(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def _secret(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL: the brokers' CA, and this client's certificate and
    key for mutual TLS when set; None for the other protocols."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=_path(settings.kafka_ssl_cafile),
        certfile=_path(settings.kafka_ssl_certfile),
        keyfile=_path(settings.kafka_ssl_keyfile),
        password=_secret(settings.kafka_ssl_key_password),
    )
    return context


def token_provider(settings: Settings) -> ClientCredentials:
    """The OAUTHBEARER token source (the settings' validation made sure it is complete)."""
    return ClientCredentials(
        settings.kafka_oauth_token_url or "",
        settings.kafka_oauth_client_id or "",
        _secret(settings.kafka_oauth_client_secret) or "",
        settings.kafka_oauth_scope,
    )


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": bootstrap_of(settings),
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_mechanism == "OAUTHBEARER":
            kwargs["sasl_oauth_token_provider"] = token_provider(settings)
        else:
            kwargs["sasl_plain_username"] = settings.kafka_sasl_username
            kwargs["sasl_plain_password"] = _secret(settings.kafka_sasl_password)
    return kwargs


def faust_credentials(settings: Settings) -> Any:
    """The same connection settings as Faust's `broker_credentials` (None: PLAINTEXT)."""
    import faust

    protocol, context = settings.kafka_security_protocol, ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if not protocol.startswith("SASL_"):
        return None
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":
        return faust.OAuthCredentials(oauth_cb=token_provider(settings), ssl_context=context)
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=_secret(settings.kafka_sasl_password),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=context,
    )


class BrokerUnreachable(ConnectionError):
    """No connection to the configured brokers (none answered, TLS or SASL refused): one line
    that says where, why, and what to set."""

    def __init__(self, settings: Settings, what: str, reason: str | None = None) -> None:
        hint = "TOUCHPOINT_KAFKA_BOOTSTRAP"
        if settings.kafka_security_protocol == "PLAINTEXT":
            hint += " (and TOUCHPOINT_KAFKA_SECURITY_PROTOCOL if the brokers need TLS or SASL)"
        else:
            hint += f" and the TLS/SASL settings (protocol {settings.kafka_security_protocol})"
        why = reason or "no broker answered"
        super().__init__(
            f"cannot connect to Kafka at {settings.kafka_bootstrap}: {what} failed: {why}; "
            f"check {hint}"
        )


class _BootstrapErrors(logging.Filter):
    """Keeps aiokafka's per-address bootstrap errors, which BrokerUnreachable then reports."""

    LOGGER = logging.getLogger("aiokafka")  # aiokafka/client.py logs there

    def __init__(self) -> None:
        super().__init__()
        self.last: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and str(record.msg).startswith("Unable connect to"):
            self.last = str(record.args[-1])
            return False
        return True


class _Client(Protocol):
    async def start(self) -> None: ...


Client = TypeVar("Client", bound=_Client)


async def _close(client: Any) -> None:
    # Producers and consumers stop; the admin client closes.
    await (client.stop() if hasattr(client, "stop") else client.close())


@asynccontextmanager
async def connected(client: Client, settings: Settings, what: str) -> AsyncIterator[Client]:
    """`client` started, closed after (even when it never connected): BrokerUnreachable, naming
    the address and `what` tried to connect, instead of aiokafka's bootstrap error."""
    errors = _BootstrapErrors()
    errors.LOGGER.addFilter(errors)
    try:
        await client.start()
    except KafkaConnectionError as exc:
        await _close(client)
        raise BrokerUnreachable(settings, what, errors.last) from exc
    except BaseException:
        await _close(client)
        raise
    finally:
        errors.LOGGER.removeFilter(errors)
    try:
        yield client
    finally:
        await _close(client)
