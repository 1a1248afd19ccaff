"""A real Prometheus (the Debian `prometheus` binary) on loopback, scraping test workers."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from processor import processes
from processor.kafka.embedded import free_port
from tests.support.observability import ALERTS
from tests.support.ready import wait_ready


class Prometheus:
    """Prometheus scraping `targets` every second, with the project's alert rules loaded."""

    def __init__(self, binary: str, workdir: Path, targets: list[str]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.targets = targets
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout_s: float = 30.0) -> None:
        """Write the configuration, start the server and wait until it is ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            # 1 s: a test cannot wait for the 15 s default to collect two samples for rate().
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": "touchpoint", "static_configs": [{"targets": self.targets}]}
            ],
        }
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        if wait_ready(
            self.proc,
            self.url("/-/ready"),
            ready_timeout_s,
            lambda _: f"prometheus exited: {self.log_path.read_text()}",
            interval_s=0.2,
        ):
            return
        self.stop()
        raise RuntimeError(f"prometheus not ready in {ready_timeout_s} s")

    def url(self, path: str) -> str:
        """A URL on the Prometheus server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns `data`, raises on an error status."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(self.url(f"/api/v1/{path}{query}"), timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{path} {params}: {exc.read().decode()}") from exc
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        result: list[dict[str, Any]] = data["result"]
        return result

    def stop(self) -> None:
        """Terminate, then kill if it does not exit within 10 s."""
        proc, self.proc = self.proc, None
        processes.stop(proc, 10)

    def __enter__(self) -> Prometheus:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
