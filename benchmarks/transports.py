"""In-process transports: a token endpoint and a resource server that never touch a socket.

Every implementation, the floor included, talks to the same fake servers through the same
kind of transport (a mounted ``requests`` adapter, or ``httpx.MockTransport`` /
``httpx2.MockTransport``), so the transport's cost is equal for all and cancels out of the
comparison.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from types import ModuleType
from typing import Any

import httpx
import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict

__all__ = [
    "API_URL",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "TOKEN_URL",
    "InProcessAdapter",
    "TokenEndpoint",
    "async_handler",
    "requests_session",
    "sync_handler",
]

TOKEN_URL = "https://auth.example/token"  # noqa: S105 - a URL
API_URL = "https://api.example/things"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"  # noqa: S105 - a made-up secret for a fake endpoint

_API_BODY = b'{"ok":true}'
_JSON = "application/json"


class TokenEndpoint:
    """A fake OAuth 2.0 token endpoint: counts token requests, answers after *latency* s.

    The latency stands for the network round trip; it is what opens the window in which
    concurrent callers can race each other into duplicate token requests.
    """

    def __init__(self, latency: float = 0.0, expires_in: int = 3600) -> None:
        self.latency = latency
        self.expires_in = expires_in
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self.count = 0

    def reset(self) -> None:
        """Forget the requests counted so far."""
        with self._lock:
            self.count = 0

    def _issue(self) -> bytes:
        with self._lock:
            self.count += 1
            serial = next(self._serial)
        return json.dumps(
            {
                "access_token": f"token-{serial}",
                "token_type": "Bearer",
                "expires_in": self.expires_in,
            }
        ).encode()

    def answer(self) -> bytes:
        """The body of a successful token response, after the latency (blocking)."""
        if self.latency:
            time.sleep(self.latency)
        return self._issue()

    async def aanswer(self) -> bytes:
        """The same, sleeping on the event loop instead of blocking it."""
        if self.latency:
            await asyncio.sleep(self.latency)
        return self._issue()


# -- requests --------------------------------------------------------------------------------------


class InProcessAdapter(requests.adapters.BaseAdapter):
    """A ``requests`` transport adapter answering API and token requests in process."""

    def __init__(self, endpoint: TokenEndpoint | None = None) -> None:
        super().__init__()
        self.endpoint = endpoint

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: object = None,
        verify: object = True,
        cert: object = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = request.url or ""
        if self.endpoint is not None and url.startswith(TOKEN_URL):
            body = self.endpoint.answer()
        else:
            body = _API_BODY
        response = requests.Response()
        response.status_code = 200
        response.reason = "OK"
        response._content = body
        response.headers = CaseInsensitiveDict({"Content-Type": _JSON})
        response.encoding = "utf-8"
        response.url = url
        response.request = request
        response.connection = self  # type: ignore[assignment]  # read by 401 retries
        return response

    def close(self) -> None:
        return None


def requests_session(
    endpoint: TokenEndpoint | None = None, session: requests.Session | None = None
) -> requests.Session:
    """*session* (a new ``requests.Session`` by default) answered in process.

    ``trust_env`` is turned off: with it on, ``requests`` looks for ``.netrc`` credentials
    and proxy variables on every request that has no auth, which would make the floor (a
    static header, no auth object) slower than an auth plugin and hide the plugin's cost.
    """
    session = requests.Session() if session is None else session
    session.trust_env = False
    session.mount("https://", InProcessAdapter(endpoint))
    return session


# -- httpx and httpx2 ------------------------------------------------------------------------------
# The handlers of ``MockTransport``, for either library (*lib*: the ``httpx`` or ``httpx2``
# module); a handler answers with the responses of its own library.


def sync_handler(
    endpoint: TokenEndpoint | None = None, lib: ModuleType = httpx
) -> Callable[[Any], Any]:
    """A ``lib.MockTransport`` handler for sync clients."""
    token_host = lib.URL(TOKEN_URL).host
    response = lib.Response

    def handle(request: Any) -> Any:
        if endpoint is not None and request.url.host == token_host:
            return response(200, content=endpoint.answer(), headers={"Content-Type": _JSON})
        return response(200, content=_API_BODY, headers={"Content-Type": _JSON})

    return handle


def async_handler(
    endpoint: TokenEndpoint | None = None, lib: ModuleType = httpx
) -> Callable[[Any], Any]:
    """A ``lib.MockTransport`` handler for async clients.

    API requests are answered directly; token requests by a coroutine, which
    ``MockTransport`` awaits, so that the token endpoint's latency does not block the loop.
    """
    token_host = lib.URL(TOKEN_URL).host
    response = lib.Response

    async def token(endpoint: TokenEndpoint) -> Any:
        return response(200, content=await endpoint.aanswer(), headers={"Content-Type": _JSON})

    def handle(request: Any) -> Any | Awaitable[Any]:
        if endpoint is not None and request.url.host == token_host:
            return token(endpoint)
        return response(200, content=_API_BODY, headers={"Content-Type": _JSON})

    return handle
