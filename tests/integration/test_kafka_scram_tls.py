"""Apache Kafka with a SASL_SSL listener (SCRAM-SHA-512 over TLS, a private CA): the commands
and a worker connect with the settings alone; a wrong password is one line.

Runs on the real broker only (TOUCHPOINT_TEST_BROKER=kafka; CI): the embedded one has no TLS."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from processor.settings import REPO_ROOT
from tests.brokers.apache_kafka import ApacheKafka, ScramTls
from tests.conftest import BROKER, require_apache_kafka
from tests.support.pki import certificates
from tests.support.worker import WorkerProcess

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(
        BROKER != "kafka", reason="needs Apache Kafka (TOUCHPOINT_TEST_BROKER=kafka)"
    ),
]

USER, PASSWORD = "touchpoint", "scram-over-tls-test"


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> tuple[ApacheKafka, Path]:
    require_apache_kafka()
    pki = tmp_path_factory.mktemp("pki")
    files = certificates(pki, "broker")
    ca, keystore = files["ca.pem"], pki / "broker-keystore.pem"
    # Kafka's PEM keystore: the private key and the certificate in one file.
    keystore.write_text(files["broker.key"].read_text() + files["broker.pem"].read_text())
    kafka = ApacheKafka(
        tmp_path_factory.mktemp("kafka"), scram_tls=ScramTls(keystore, USER, PASSWORD)
    )
    with kafka:
        yield kafka, ca


def _env(kafka: ApacheKafka, ca: Path, password: str = PASSWORD) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHPOINT_")}
    return {
        **keep,
        "TOUCHPOINT_KAFKA_BOOTSTRAP": kafka.secure_bootstrap,
        "TOUCHPOINT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TOUCHPOINT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TOUCHPOINT_KAFKA_SASL_USERNAME": USER,
        "TOUCHPOINT_KAFKA_SASL_PASSWORD": password,
        "TOUCHPOINT_KAFKA_SSL_CAFILE": str(ca),
    }


def _touchpoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_commands_and_a_worker_use_scram_over_tls(
    secure_kafka: tuple[ApacheKafka, Path], tmp_path: Path
) -> None:
    kafka, ca = secure_kafka
    env = _env(kafka, ca)
    applied = _touchpoint(env, "topics", "apply")
    assert applied.returncode == 0, applied.stderr
    events = tmp_path / "events.jsonl"
    shutil.copy2(REPO_ROOT / "topics/examples/events.jsonl", events)
    with WorkerProcess(kafka.secure_bootstrap, tmp_path / "worker", base_env=env):
        published = _touchpoint(env, "publish", "--now", str(events))
        assert published.returncode == 0, published.stderr
        tailed = _touchpoint(env, "tail", "actions", "--from-beginning", "--customer", "C-1001",
                             "--max", "1", "--idle-timeout", "60")  # fmt: skip
    assert tailed.returncode == 0, tailed.stderr
    (action,) = [orjson.loads(line) for line in tailed.stdout.splitlines()]
    assert action["template"] == "welcome"


def test_a_wrong_password_is_one_line(secure_kafka: tuple[ApacheKafka, Path]) -> None:
    kafka, ca = secure_kafka
    result = _touchpoint(_env(kafka, ca, password="wrong"), "topics", "check")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("touchpoint: "), line
    assert line.startswith(f"touchpoint: cannot connect to Kafka at {kafka.secure_bootstrap}: ")
    assert "SaslAuthenticationFailed" in line, line
