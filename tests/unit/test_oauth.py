"""OAUTHBEARER tokens by the client credentials grant, from a real HTTP token endpoint."""

from __future__ import annotations

import asyncio
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import faust
import orjson
import pytest

from processor.kafka.clients import connection_kwargs, faust_credentials
from processor.kafka.oauth import ClientCredentials, TokenError
from processor.settings import Settings


class _Endpoint(BaseHTTPRequestHandler):
    requests: list[dict[str, str]]
    answer: dict[str, Any]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        type(self).requests.append(form)
        body = orjson.dumps(type(self).answer)
        self.send_response(200 if "access_token" in type(self).answer else 400)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[_Endpoint]]]:
    handler = type("Handler", (_Endpoint,), {"requests": [], "answer": {}})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/token", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_token_is_fetched_once_and_kept_until_near_expiry(
    endpoint: tuple[str, type[_Endpoint]],
) -> None:
    url, handler = endpoint
    handler.answer = {"access_token": "t-1", "expires_in": 3600, "token_type": "Bearer"}
    tokens = ClientCredentials(url, "worker", "s3cret", scope="kafka")

    async def twice() -> list[str]:
        return [await tokens.token(), await tokens.token()]

    assert asyncio.run(twice()) == ["t-1", "t-1"]
    assert handler.requests == [
        {"grant_type": "client_credentials", "client_id": "worker", "client_secret": "s3cret",
         "scope": "kafka"},
    ]  # fmt: skip
    handler.answer = {"access_token": "t-2", "expires_in": 30}  # shorter than the renewal margin
    tokens._renew_at = 0.0
    assert asyncio.run(twice()) == ["t-2", "t-2"]
    assert len(handler.requests) == 3  # a token about to expire is fetched again each time


def test_an_endpoint_without_a_token_is_one_line(endpoint: tuple[str, type[_Endpoint]]) -> None:
    url, handler = endpoint
    handler.answer = {"error": "invalid_client"}
    with pytest.raises(TokenError, match=rf"^no OAuth token from {url}: "):
        asyncio.run(ClientCredentials(url, "worker", "wrong").token())


def test_oauthbearer_settings_reach_the_commands_and_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "KAFKA_BOOTSTRAP": "kafka:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "KAFKA_OAUTH_TOKEN_URL": "https://idp.example/token",
        "KAFKA_OAUTH_CLIENT_ID": "worker",
        "KAFKA_OAUTH_CLIENT_SECRET": "s3cret",
    }.items():
        monkeypatch.setenv(f"TOUCHPOINT_{name}", value)
    settings = Settings()
    kwargs = connection_kwargs(settings)
    assert kwargs["sasl_mechanism"] == "OAUTHBEARER"
    provider = kwargs["sasl_oauth_token_provider"]
    assert (provider.url, provider.client_id) == ("https://idp.example/token", "worker")
    assert "sasl_plain_password" not in kwargs
    creds = faust_credentials(settings)
    assert isinstance(creds, faust.OAuthCredentials)
    assert creds.ssl_context is not None
    assert "s3cret" not in repr(settings)
