"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) for tests.

The broker jars come from Maven Central through ``kafka-pom.xml`` (next to this file) and are
cached; the broker runs as a plain ``java`` process on loopback ports with its data in a
directory of the caller's choosing.

    with ApacheKafka(tmp_path / "kafka") as kafka:
        ...  # kafka.bootstrap == "127.0.0.1:PORT"

Needs Java 17+ and Maven (``apt-get install openjdk-17-jre-headless maven``).  Developers can
start one from a shell with ``python tests/brokers/apache_kafka.py [--cache DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import fcntl
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from processor import processes

__all__ = [
    "KAFKA_POM",
    "ApacheKafka",
    "BrokerStartError",
    "BrokerUnavailable",
    "ScramTls",
    "default_cache_dir",
    "ensure_jars",
    "kafka_version",
    "missing_tools",
]

KAFKA_POM = Path(__file__).resolve().with_name("kafka-pom.xml")
REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "install them with `apt-get install openjdk-17-jre-headless maven`"
_COMPLETE_MARKER = "libs.complete"
_T = TypeVar("_T")
_MVN_TIMEOUT_S = 900.0


class BrokerUnavailable(RuntimeError):
    """The broker cannot be provided here: java/mvn missing or the jars cannot be fetched."""


class BrokerStartError(RuntimeError):
    """The broker process did not start or did not become ready in time."""


def default_cache_dir() -> Path:
    """The jar cache: ``$TOUCHPOINT_KAFKA_CACHE`` (relative to the repo root), or ``.cache/kafka``.

    An absolute ``$TOUCHPOINT_KAFKA_CACHE`` is used as is.
    """
    configured = os.environ.get("TOUCHPOINT_KAFKA_CACHE")
    return REPO_ROOT / (configured or ".cache/kafka")


def kafka_version(pom: Path = KAFKA_POM) -> str:
    """The Kafka version pinned in ``kafka-pom.xml``."""
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", pom.read_text("utf-8"))
    if match is None:
        raise BrokerUnavailable(f"{pom} has no <kafka.version> property")
    return match.group(1)


def missing_tools() -> list[str]:
    """The names of the required programs (``java``, ``mvn``) that are not on ``PATH``."""
    return [tool for tool in ("java", "mvn") if shutil.which(tool) is None]


def _require_tools(*tools: str) -> None:
    missing = [tool for tool in missing_tools() if tool in tools]
    if missing:
        raise BrokerUnavailable(
            f"the real Kafka broker needs {' and '.join(missing)} on PATH "
            f"(Java 17+ and Maven); {INSTALL_HINT}"
        )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise downloads between processes (e.g. pytest-xdist workers)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_jars(cache_dir: Path, *, progress: Callable[[str], None] = print) -> Path:
    """Download the broker jars into ``cache_dir/kafka-<version>/libs`` once; return that dir.

    A marker file written after the download says the directory is complete; the jars are
    copied into a temporary directory first and renamed, so an interrupted download is never
    taken for a complete one.  Maven's local repository lives in ``cache_dir/m2``.
    """
    version = kafka_version()
    cache_dir = cache_dir.expanduser().resolve()
    home = cache_dir / f"kafka-{version}"
    libs = home / "libs"
    marker = home / _COMPLETE_MARKER
    if marker.is_file() and libs.is_dir():
        return libs

    _require_tools("java", "mvn")
    home.mkdir(parents=True, exist_ok=True)
    with _file_lock(home / ".lock"):
        if marker.is_file() and libs.is_dir():  # another process finished meanwhile
            return libs
        for stale in home.glob("libs.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix="libs.tmp-", dir=home))
        command = [
            "mvn",
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(KAFKA_POM),
            "dependency:copy-dependencies",
            f"-Dkafka.libs.dir={staging}",
            f"-Dmaven.repo.local={cache_dir / 'm2'}",
        ]
        progress(f"apache-kafka: fetching Kafka {version} jars from Maven Central into {libs} ...")
        started = time.monotonic()
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_MVN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise BrokerUnavailable(f"mvn did not finish within {_MVN_TIMEOUT_S:.0f} s") from exc
        broker_jar = staging / f"kafka_2.13-{version}.jar"
        if result.returncode != 0 or not broker_jar.is_file():
            shutil.rmtree(staging, ignore_errors=True)
            output = (result.stdout + result.stderr).strip()[-4000:]
            raise BrokerUnavailable(
                f"could not fetch the Kafka {version} jars (mvn exit code {result.returncode}; "
                f"Maven Central must be reachable):\n{output}"
            )
        if libs.exists():  # left over from an interrupted run: never trust it
            shutil.rmtree(libs)
        staging.rename(libs)
        jars = sorted(libs.glob("*.jar"))
        marker.write_text("\n".join(jar.name for jar in jars) + "\n", "utf-8")
    size_mb = sum(jar.stat().st_size for jar in jars) / 1e6
    progress(
        f"apache-kafka: {len(jars)} jars ({size_mb:.0f} MB) ready "
        f"in {time.monotonic() - started:.1f} s"
    )
    return libs


def _new_cluster_id() -> str:
    """22 characters of url-safe base64, like ``kafka-storage random-uuid``; never a leading -."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (all sockets are held until every port is picked)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


_LOG4J2_PROPERTIES = """\
# Written by tests/brokers/apache_kafka.py: everything to stdout, which goes to kafka.log.
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


@dataclass(frozen=True)
class ScramTls:
    """A second listener, SASL_SSL with SCRAM-SHA-512, for one user (created at format time).

    ``keystore`` is a PEM file with the broker's private key (unencrypted PKCS#8) and its
    certificate, which must name 127.0.0.1 (clients check the host name)."""

    keystore: Path
    username: str
    password: str
    mechanism: str = "SCRAM-SHA-512"


_RUNNING: set[ApacheKafka] = set()  # strong refs: a dropped broker is still killed at exit


@atexit.register
def _kill_leftovers() -> None:
    """Never leave a JVM behind when the interpreter exits without stopping a broker."""
    for broker in list(_RUNNING):
        broker.stop(timeout=5.0)


class ApacheKafka:
    """One Apache Kafka broker+controller process on 127.0.0.1.

    ``start()`` (or ``with``/``async with``) fetches the jars if needed, picks two free loopback
    ports, writes ``server.properties`` and ``log4j2.properties`` into ``data_dir``, formats the
    storage and waits until an aiokafka admin client can list topics.  ``restart()`` keeps the
    data directory and the ports, so clients can reconnect to the same ``bootstrap``.

    All output of the broker goes to ``log_path`` (``data_dir/kafka.log``).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        cache_dir: Path | None = None,
        libs_dir: Path | None = None,
        heap: str = "1g",
        start_timeout: float = 120.0,
        properties: Mapping[str, str] | None = None,
        scram_tls: ScramTls | None = None,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.cache_dir = cache_dir
        self.libs_dir = libs_dir
        self.heap = heap
        self.start_timeout = start_timeout
        self.extra_properties = dict(properties or {})
        self.scram_tls = scram_tls
        self.progress = progress
        self.version = kafka_version()
        self.port: int | None = None
        self.controller_port: int | None = None
        self.secure_port: int | None = None
        self.cluster_id: str | None = None
        #: Seconds the last start() took until the broker answered (without jar download).
        self.start_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # -- public surface --------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"`` of the PLAINTEXT listener (fixed from the first start on)."""
        if self.port is None:
            raise RuntimeError("the broker has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def secure_bootstrap(self) -> str:
        """``"127.0.0.1:PORT"`` of the SASL_SSL listener (with ``scram_tls``)."""
        if self.secure_port is None:
            raise RuntimeError("the broker has no SASL_SSL listener (scram_tls) or is not started")
        return f"127.0.0.1:{self.secure_port}"

    @property
    def pid(self) -> int | None:
        """The JVM's process id while it runs, else None."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "kafka.log"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "kafka-logs"

    def start(self) -> Self:
        """Start the broker and wait until it serves metadata; a no-op if it already runs."""
        if self.running:
            return self
        libs = self._libs()
        _require_tools("java")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "tmp").mkdir(exist_ok=True)
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2_PROPERTIES, "utf-8")
        # Ports are chosen once: a restart must come back on the same address.  If another
        # process grabs a freshly picked port before the JVM binds it, pick again.
        attempts = 3 if self.port is None else 1
        for attempt in range(1, attempts + 1):
            if self.port is None or self.controller_port is None:
                self.port, self.controller_port, secure = _free_ports(3)
                self.secure_port = secure if self.scram_tls is not None else None
            self._write_properties()
            self._format_storage(libs)
            try:
                self._launch_and_wait(libs)
                return self
            except BrokerStartError as exc:
                bind_failed = "Address already in use" in f"{exc}{_tail(self.log_path, 200)}"
                if attempt < attempts and bind_failed:
                    self.port = self.controller_port = self.secure_port = None
                    continue
                raise
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL.  Returns the exit code."""
        process, self._process = self._process, None
        _RUNNING.discard(self)
        returncode = processes.stop(process, timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return returncode

    def restart(self) -> Self:
        """Stop, then start again on the same data directory and ports."""
        self.stop()
        return self.start()

    def kill(self) -> None:
        """SIGKILL the broker (an unclean crash); ``start()`` brings it back."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<ApacheKafka {self.version} {self.port and self.bootstrap} {state}>"

    # -- internals ---------------------------------------------------------------------------

    def _libs(self) -> Path:
        if self.libs_dir is None:
            self.libs_dir = ensure_jars(
                self.cache_dir or default_cache_dir(), progress=self.progress
            )
        return self.libs_dir

    def _java(self, libs: Path, main: str, *args: str, heap: str) -> list[str]:
        return [
            "java",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Djava.io.tmpdir={self.data_dir / 'tmp'}",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",  # expanded by the JVM, not a shell
            main,
            *args,
        ]

    def _write_properties(self) -> None:
        port, cport = self.port, self.controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{cport}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
        }
        if self.scram_tls is not None:
            props.update(self._scram_tls_properties(self.scram_tls))
        if int(self.version.split(".")[0]) >= 4:  # share groups (KIP-932) exist from 4.0 on
            props["share.coordinator.state.topic.replication.factor"] = "1"
            props["share.coordinator.state.topic.min.isr"] = "1"
        props.update(self.extra_properties)
        lines = ["# Written by tests/brokers/apache_kafka.py"]
        lines += [f"{key}={value}" for key, value in props.items()]
        self.properties_path.write_text("\n".join(lines) + "\n", "utf-8")

    def _scram_tls_properties(self, scram: ScramTls) -> dict[str, str]:
        sport = self.secure_port
        prefix = f"listener.name.sasl_ssl.{scram.mechanism.lower()}"
        return {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port},SASL_SSL://127.0.0.1:{sport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"SASL_SSL://127.0.0.1:{sport}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
            "SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": scram.mechanism,
            f"{prefix}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(scram.keystore),
        }

    def _format_storage(self, libs: Path) -> None:
        meta = self.log_dirs / "meta.properties"
        if meta.is_file():  # already formatted (restart); the properties may carry new ports
            found = re.search(r"^cluster\.id=(\S+)$", meta.read_text("utf-8"), re.MULTILINE)
            self.cluster_id = found.group(1) if found else None
            return
        self.cluster_id = _new_cluster_id()
        command = self._java(
            libs,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self.cluster_id,
            "-c",
            str(self.properties_path),
            "--ignore-formatted",
            *self._scram_users(),
            heap="256m",
        )
        result = subprocess.run(
            command,
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            raise BrokerStartError(
                f"formatting {self.log_dirs} failed (exit code {result.returncode}):\n"
                f"{(result.stdout + result.stderr).strip()[-4000:]}"
            )

    def _scram_users(self) -> list[str]:
        scram = self.scram_tls
        if scram is None:
            return []
        return [
            "--add-scram",
            f"{scram.mechanism}=[name={scram.username},password={scram.password}]",
        ]

    def _launch_and_wait(self, libs: Path) -> None:
        assert self.port is not None
        if _port_open(self.port):
            raise BrokerStartError(f"127.0.0.1:{self.port}: Address already in use")
        command = self._java(libs, "kafka.Kafka", str(self.properties_path), heap=self.heap)
        started = time.monotonic()
        self._log_file = self.log_path.open("ab")
        self._log_file.write(f"$ {' '.join(command)}\n".encode())
        self._log_file.flush()
        self._process = subprocess.Popen(
            command,
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not the JVM
        )
        _RUNNING.add(self)
        try:
            self._wait_ready(started + self.start_timeout)
        except BaseException:
            self.stop(timeout=10.0)
            raise
        self.start_seconds = time.monotonic() - started

    def _wait_ready(self, deadline: float) -> None:
        """Poll until the broker answers ``list_topics``; fail fast if the JVM exits."""
        assert self.port is not None
        last_error: BaseException | None = None
        while True:
            process = self._process
            if process is None or process.poll() is not None:
                code = process.returncode if process else None
                raise BrokerStartError(
                    f"Kafka exited with code {code} before it was ready; "
                    f"tail of {self.log_path}:\n{_tail(self.log_path)}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerStartError(
                    f"Kafka was not ready within {self.start_timeout:.0f} s "
                    f"(last error: {last_error!r}); tail of {self.log_path}:\n"
                    f"{_tail(self.log_path)}"
                )
            if _port_open(self.port):
                try:
                    _, cluster = _run_async(_probe(self.bootstrap, min(remaining, 10.0)))
                except (KafkaError, OSError, TimeoutError) as exc:
                    last_error = exc
                else:
                    # Ready once this broker (node 1, unfenced) is in the metadata of our cluster.
                    node_ids = [broker["node_id"] for broker in cluster.get("brokers", [])]
                    if cluster.get("cluster_id") not in (None, self.cluster_id):
                        raise BrokerStartError(
                            f"{self.bootstrap} answers for cluster {cluster.get('cluster_id')}, "
                            f"not {self.cluster_id}: another broker holds the port"
                        )
                    if 1 in node_ids:
                        return
                    last_error = RuntimeError(f"broker 1 not in metadata yet: {cluster}")
            time.sleep(0.2)


async def _probe(bootstrap: str, budget_s: float) -> tuple[list[str], dict[str, Any]]:
    """``list_topics`` and the cluster metadata, through a fresh aiokafka admin client."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(int(budget_s * 1000), 1000)
    )
    try:
        async with asyncio.timeout(budget_s):
            await admin.start()
            topics: list[str] = await admin.list_topics()
            cluster: dict[str, Any] = await admin.describe_cluster()
            return topics, cluster
    finally:
        await admin.close()


def _run_async(coroutine: Coroutine[object, object, _T]) -> _T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Start a real single-node Apache Kafka broker on 127.0.0.1 until Ctrl-C."
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="jar cache (default: $TOUCHPOINT_KAFKA_CACHE or <repo>/.cache/kafka)",
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="data directory (default: a temporary one)"
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        data = args.data or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kafka-")))
        broker = ApacheKafka(data, cache_dir=args.cache)
        try:
            stack.enter_context(broker)
        except (BrokerUnavailable, BrokerStartError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"Kafka {broker.version} ready in {broker.start_seconds:.1f} s (pid {broker.pid})")
        print(f"bootstrap: {broker.bootstrap}")
        print(f"log:       {broker.log_path}")
        print("Ctrl-C to stop.", flush=True)
        try:
            while broker.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping ...", flush=True)
            return 0
        print(f"Kafka exited unexpectedly; see {broker.log_path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
