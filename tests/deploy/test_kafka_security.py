"""Kafka security from the environment alone: SASL_SSL with SCRAM and a private CA reach the
worker's Faust app and every aiokafka client the commands create; the password stays out of
logs. (A broker with SCRAM over TLS is not started here: this checks what each client is given.)"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import faust
import pytest

from processor.journey.definition import load_journey
from processor.kafka.clients import connection_kwargs
from processor.metrics import Metrics
from processor.settings import DEFAULT_JOURNEY_FILE, Settings
from processor.stream.app import create_app
from tests.support.system_tools import require_tool

PASSWORD = "s3cr3t-scram-password"


def _ca(directory: Path) -> Path:
    """A throwaway certificate authority, as a cluster's CA bundle file."""
    openssl = require_tool("openssl")
    cert = directory / "ca.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=touchpoint-test-ca", "-keyout", str(directory / "ca.key"),
         "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert


def _trusts_only(context: ssl.SSLContext) -> list[str]:
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    subjects: list[Any] = [cert["subject"] for cert in context.get_ca_certs()]
    return [value for subject in subjects for rdn in subject for name, value in rdn
            if name == "commonName"]  # fmt: skip


@pytest.fixture
def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    env = {
        "TOUCHPOINT_KAFKA_BOOTSTRAP": "kafka-0.kafka:9093,kafka-1.kafka:9093",
        "TOUCHPOINT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TOUCHPOINT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "TOUCHPOINT_KAFKA_SASL_USERNAME": "touchpoint",
        "TOUCHPOINT_KAFKA_SASL_PASSWORD": PASSWORD,
        "TOUCHPOINT_KAFKA_SSL_CAFILE": str(_ca(tmp_path)),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_worker_connects_with_scram_over_tls(secured: Settings) -> None:
    rt = create_app(secured, load_journey(DEFAULT_JOURNEY_FILE), Metrics.create())
    assert [str(b) for b in rt.app.conf.broker] == ["kafka://kafka-0.kafka:9093",
                                                    "kafka://kafka-1.kafka:9093"]  # fmt: skip
    creds = rt.app.conf.broker_credentials
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.protocol.value, creds.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-256")
    assert (creds.username, creds.password) == ("touchpoint", PASSWORD)
    assert creds.ssl_context is not None
    assert _trusts_only(creds.ssl_context) == ["touchpoint-test-ca"]


def test_every_command_s_client_connects_with_scram_over_tls(secured: Settings) -> None:
    kwargs = connection_kwargs(secured)
    assert kwargs["bootstrap_servers"] == "kafka-0.kafka:9093,kafka-1.kafka:9093"
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
        "touchpoint",
        PASSWORD,
    )
    assert _trusts_only(kwargs["ssl_context"]) == ["touchpoint-test-ca"]


def test_the_password_is_never_shown(secured: Settings) -> None:
    for shown in (repr(secured), str(secured), secured.model_dump_json()):
        assert PASSWORD not in shown


def test_plaintext_needs_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOUCHPOINT_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    for name in ("SECURITY_PROTOCOL", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CAFILE"):
        monkeypatch.delenv(f"TOUCHPOINT_KAFKA_{name}", raising=False)
    kwargs = connection_kwargs(Settings())
    assert kwargs == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
