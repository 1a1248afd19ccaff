"""SASL/OAUTHBEARER tokens from an identity provider, by the OAuth 2.0 client credentials grant.

aiokafka asks its token provider for a token at every (re)authentication; this one keeps the
token until a minute before it expires, then asks the token endpoint again.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.parse
import urllib.request

import orjson
from aiokafka.abc import AbstractTokenProvider

#: A token is renewed this long before the provider says it expires.
RENEW_BEFORE_S = 60.0


class TokenError(ConnectionError):
    """The token endpoint did not give a token: one line that says which and why."""


class ClientCredentials(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka has no types
    """Tokens for one client id and secret from one token endpoint."""

    def __init__(self, url: str, client_id: str, secret: str, scope: str | None = None) -> None:
        self.url = url
        self.client_id = client_id
        self._secret = secret
        self.scope = scope
        self._token: str | None = None
        self._renew_at = 0.0

    async def token(self) -> str:
        if self._token is None or time.monotonic() >= self._renew_at:
            fresh, lifetime = await asyncio.to_thread(self._fetch)
            self._token = fresh
            self._renew_at = time.monotonic() + max(0.0, lifetime - RENEW_BEFORE_S)
            return fresh
        return self._token

    def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials", "client_id": self.client_id}
        form["client_secret"] = self._secret
        if self.scope:
            form["scope"] = self.scope
        request = urllib.request.Request(  # noqa: S310 (the operator's configured endpoint)
            self.url,
            data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:  # noqa: S310
                body = orjson.loads(answer.read())
        except urllib.error.HTTPError as exc:
            with exc:  # the refusal's body names the OAuth error (invalid_client, ...)
                said = exc.read()[:200].decode("utf-8", "replace")
            raise TokenError(f"no OAuth token from {self.url}: HTTP {exc.code} {said}") from exc
        except (OSError, orjson.JSONDecodeError) as exc:
            raise TokenError(f"no OAuth token from {self.url}: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise TokenError(f"no OAuth token from {self.url}: the answer has no access_token")
        lifetime = body.get("expires_in")
        return body["access_token"], float(lifetime) if isinstance(lifetime, int | float) else 300.0
