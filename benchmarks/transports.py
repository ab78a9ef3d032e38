"""In-process transports: API requests answered on the spot, token requests handed to the
package's :class:`~oauth_cc_auth.testing.Emulator`; nothing touches a socket.

Every implementation, the floor included, talks to the same fakes through the same kind of
transport (a mounted ``requests`` adapter, or ``httpx.MockTransport`` /
``httpx2.MockTransport``), so the transport's cost is equal for all and cancels out of the
comparison. Only token requests reach the emulator (:meth:`Emulator.handle`, or
:meth:`Emulator.ahandle` in a worker thread for async clients): the API answer on the hot
path is a constant, so the per-request timings measure the auth plugins, not the emulator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict

from oauth_cc_auth.testing import Answered, EmulatedClient, Emulator

__all__ = [
    "API_URL",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "TOKEN_URL",
    "InProcessAdapter",
    "async_handler",
    "register",
    "requests_session",
    "sync_handler",
    "token_endpoint",
]

#: The emulator's ``rfc6749`` token endpoint (its path), on a host of its own.
TOKEN_URL = "https://auth.example/oauth/token"  # noqa: S105 - a URL
API_URL = "https://api.example/things"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"  # noqa: S105 - a made-up secret for a fake endpoint

_TOKEN_HOST = urlsplit(TOKEN_URL).hostname
_API_BODY = b'{"ok":true}'
_JSON = "application/json"


def token_endpoint(latency: float = 0.0) -> Emulator:
    """The token endpoint of one setup: an :class:`Emulator` knowing :data:`CLIENT_ID`,
    issuing ``token-1``, ``token-2``... for an hour, each after *latency* seconds.

    The latency stands for the network round trip; it is what opens the window in which
    concurrent callers can race each other into duplicate token requests. The count of token
    requests is ``token_requests.total()``; ``reset_counters()`` forgets them.
    """
    endpoint = Emulator(token_prefix="token-")  # noqa: S106 - a prefix, not a password
    endpoint.latency = latency
    register(endpoint, CLIENT_ID)
    return endpoint


def register(endpoint: Emulator, client_id: str) -> None:
    """Make *endpoint* accept *client_id* with :data:`CLIENT_SECRET`."""
    endpoint.register_client(EmulatedClient("rfc6749", client_id, CLIENT_SECRET))


# -- requests --------------------------------------------------------------------------------------


def _body_bytes(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    return b"" if body is None else str(body).encode()


class InProcessAdapter(requests.adapters.BaseAdapter):
    """A ``requests`` transport adapter answering API requests itself and token requests
    with *endpoint*."""

    def __init__(self, endpoint: Emulator | None = None) -> None:
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
        response = requests.Response()
        if self.endpoint is not None and urlsplit(url).hostname == _TOKEN_HOST:
            answered = self.endpoint.handle(
                request.method or "GET", url, request.headers, _body_bytes(request.body)
            )
            response.status_code, response._content = answered.status, answered.body
            response.headers = CaseInsensitiveDict(answered.headers)
        else:
            response.status_code, response._content = 200, _API_BODY
            response.headers = CaseInsensitiveDict({"Content-Type": _JSON})
        response.reason = "OK" if response.status_code == 200 else "Error"
        response.encoding = "utf-8"
        response.url = url
        response.request = request
        response.connection = self  # type: ignore[assignment]  # read by 401 retries
        return response

    def close(self) -> None:
        return None


def requests_session(
    endpoint: Emulator | None = None, session: requests.Session | None = None
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


def _response(lib: ModuleType, answered: Answered) -> Any:
    return lib.Response(answered.status, headers=answered.headers, content=answered.body)


def sync_handler(endpoint: Emulator | None = None, lib: ModuleType = httpx) -> Callable[[Any], Any]:
    """A ``lib.MockTransport`` handler for sync clients."""
    token_host = lib.URL(TOKEN_URL).host
    api = lib.Response

    def handle(request: Any) -> Any:
        if endpoint is not None and request.url.host == token_host:
            return _response(lib, endpoint.handle(
                request.method, str(request.url), request.headers.multi_items(), request.read()
            ))
        return api(200, content=_API_BODY, headers={"Content-Type": _JSON})

    return handle


def async_handler(
    endpoint: Emulator | None = None, lib: ModuleType = httpx
) -> Callable[[Any], Any]:
    """A ``lib.MockTransport`` handler for async clients.

    API requests are answered directly; token requests by a coroutine, which
    ``MockTransport`` awaits: the emulator answers in a worker thread, so that its latency
    does not block the loop.
    """
    token_host = lib.URL(TOKEN_URL).host
    api = lib.Response

    async def token(endpoint: Emulator, request: Any) -> Any:
        return _response(lib, await endpoint.ahandle(
            request.method, str(request.url), request.headers.multi_items(),
            await request.aread(),
        ))

    def handle(request: Any) -> Any | Awaitable[Any]:
        if endpoint is not None and request.url.host == token_host:
            return token(endpoint, request)
        return api(200, content=_API_BODY, headers={"Content-Type": _JSON})

    return handle
