"""Connection options shared by every aiokafka client the processor creates."""

from __future__ import annotations

from typing import Any

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
