"""Kafka security from the environment alone: SASL_SSL with SCRAM and a private CA reach the
worker's Faust app and every aiokafka client the commands create; the password stays out of
logs; mutual TLS presents the client certificate to a server that requires one. (The broker
with SCRAM over TLS is in tests/integration/test_kafka_scram_tls.py.)"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust
import pytest

from processor.journey.definition import load_journey
from processor.kafka.clients import connection_kwargs, faust_credentials
from processor.metrics import Metrics
from processor.settings import DEFAULT_JOURNEY_FILE, Settings
from processor.stream.app import create_app
from tests.support.pki import certificates

PASSWORD = "s3cr3t-scram-password"


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
        "TOUCHPOINT_KAFKA_SSL_CAFILE": str(certificates(tmp_path)["ca.pem"]),
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


def _handshake(client: ssl.SSLContext, pki: dict[str, Path]) -> str | None:
    """TLS with a server that requires a client certificate from the CA; the client's CN."""
    import socket
    import threading

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki["server.pem"], pki["server.key"])
    server.load_verify_locations(pki["ca.pem"])
    server.verify_mode = ssl.CERT_REQUIRED
    seen: list[str | None] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server.wrap_socket(conn, server_side=True) as tls:
                    peer = tls.getpeercert() or {}
                    seen.append(dict(x[0] for x in peer.get("subject", ())).get("commonName"))
            except (ssl.SSLError, OSError):
                seen.append(None)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port)) as raw,
                client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass
        thread.join(10)
    return seen[0] if seen else None


def test_mutual_tls_presents_the_client_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = certificates(tmp_path, "server", "client")
    monkeypatch.setenv("TOUCHPOINT_KAFKA_BOOTSTRAP", "127.0.0.1:9093")
    monkeypatch.setenv("TOUCHPOINT_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("TOUCHPOINT_KAFKA_SSL_CAFILE", str(pki["ca.pem"]))
    without = connection_kwargs(Settings())["ssl_context"]
    assert _handshake(without, pki) is None  # the server refuses a client without one
    monkeypatch.setenv("TOUCHPOINT_KAFKA_SSL_CERTFILE", str(pki["client.pem"]))
    monkeypatch.setenv("TOUCHPOINT_KAFKA_SSL_KEYFILE", str(pki["client.key"]))
    settings = Settings()
    assert _handshake(connection_kwargs(settings)["ssl_context"], pki) == "client"
    creds = faust_credentials(settings)
    assert isinstance(creds, faust.SSLCredentials)
    assert _handshake(creds.context, pki) == "client"


def test_incomplete_credentials_are_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from processor.cli.common import load_settings

    monkeypatch.setenv("TOUCHPOINT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("TOUCHPOINT_KAFKA_SASL_MECHANISM", "OAUTHBEARER")
    monkeypatch.setenv("TOUCHPOINT_KAFKA_OAUTH_TOKEN_URL", "https://idp.example/token")
    with pytest.raises(SystemExit) as exit_:
        load_settings()
    assert str(exit_.value.code) == (
        "touchpoint: invalid configuration:\n  OAUTHBEARER needs "
        "TOUCHPOINT_KAFKA_OAUTH_CLIENT_ID, TOUCHPOINT_KAFKA_OAUTH_CLIENT_SECRET"
    )
