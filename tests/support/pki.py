"""Throwaway certificates for TLS tests: a CA, and keys and certificates it signs (openssl)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.system_tools import require_tool


def certificates(directory: Path, *names: str) -> dict[str, Path]:
    """`ca.pem` (and `ca.key`), and for each name `<name>.key` and `<name>.pem`: a certificate
    with that common name for 127.0.0.1 and localhost, signed by the CA, valid for a day."""
    openssl = require_tool("openssl")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
        "/CN=touchpoint-test-ca", "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    out = {"ca.pem": directory / "ca.pem"}
    for name in names:
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", "san.ext",
            "-out", f"{name}.pem")  # fmt: skip
        out[f"{name}.key"] = directory / f"{name}.key"
        out[f"{name}.pem"] = directory / f"{name}.pem"
    return out
