"""Connection options shared by every aiokafka client the processor creates."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context

from processor.settings import Settings


def bootstrap_of(settings: Settings) -> str:
    """The configured bootstrap servers; a clear error when there are none."""
    if not settings.kafka_bootstrap:
        raise ValueError(
            "no Kafka bootstrap servers configured: set TOUCHPOINT_KAFKA_BOOTSTRAP=host:port"
        )
    return settings.kafka_bootstrap


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": bootstrap_of(settings),
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if settings.kafka_security_protocol.startswith("SASL_"):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        password = settings.kafka_sasl_password
        kwargs["sasl_plain_password"] = password.get_secret_value() if password else None
    return kwargs


class BrokerUnreachable(ConnectionError):
    """No broker answered at the configured address: one line that says where and what to set."""

    def __init__(self, settings: Settings, what: str, reason: str | None = None) -> None:
        hint = "TOUCHPOINT_KAFKA_BOOTSTRAP"
        if settings.kafka_security_protocol == "PLAINTEXT":
            hint += " (and TOUCHPOINT_KAFKA_SECURITY_PROTOCOL if the brokers need TLS or SASL)"
        else:
            hint += f" and the TLS/SASL settings (protocol {settings.kafka_security_protocol})"
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"cannot reach Kafka at {settings.kafka_bootstrap}: {what} found no broker "
            f"there{why}; check {hint}"
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
