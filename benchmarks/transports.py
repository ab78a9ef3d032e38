"""In-process transports: API requests answered on the spot, token requests handed to the
package's :class:`~oauth_cc_auth.testing.Emulator`; nothing touches a socket.

Every implementation, the floor included, talks to the same fakes through the same kind of
transport (a mounted ``requests`` or ``niquests`` adapter, ``httpx.MockTransport`` /
``httpx2.MockTransport``, or for aiohttp, which has no mock transport, a connector whose
connections are an in-memory ``asyncio.Transport``: aiohttp writes and parses real HTTP/1.1
through it), so the transport's cost is equal for all and cancels out of the comparison.
Only token requests reach the emulator (:meth:`Emulator.handle`, or :meth:`Emulator.ahandle`
in a worker thread for async clients): the API answer on the hot path is a constant, so
the per-request timings measure the auth plugins, not the emulator.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
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
    "API",
    "API_URL",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "TOKEN_URL",
    "AsyncNiquestsAdapter",
    "InProcessAdapter",
    "InProcessConnector",
    "NiquestsAdapter",
    "aiohttp_session",
    "async_handler",
    "memory_raw",
    "niquests_session",
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


@dataclasses.dataclass
class _Api:
    """How long the API takes to answer (a network round trip): 0 in the timings, which
    measure the plugins; a few milliseconds in the refresh latencies (``refresh.py``)."""

    latency: float = 0.0


#: Read by every transport on every API request.
API = _Api()
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
            if API.latency:
                time.sleep(API.latency)
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
        if API.latency:
            time.sleep(API.latency)
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

    async def slow_api() -> Any:
        await asyncio.sleep(API.latency)
        return api(200, content=_API_BODY, headers={"Content-Type": _JSON})

    def handle(request: Any) -> Any | Awaitable[Any]:
        if endpoint is not None and request.url.host == token_host:
            return token(endpoint, request)
        if API.latency:
            return slow_api()
        return api(200, content=_API_BODY, headers={"Content-Type": _JSON})

    return handle


# -- niquests --------------------------------------------------------------------------------------
# Adapters mounted like requests' (niquests.Session.mount; an AsyncBaseAdapter for an
# AsyncSession). niquests' Session.send passes its adapters more keyword arguments than
# requests' (on_post_connection, multiplexed...): taken and ignored.


class _MemoryRaw:
    """A niquests response's ``raw``: its body, read from memory (no urllib3 response
    behind it, so no cookies to extract)."""

    _original_response = None

    def __init__(self, body: bytes) -> None:
        self._body = body

    def read(self, amt: int | None = None, decode_content: bool = True) -> bytes:
        data = self._body if amt is None else self._body[:amt]
        self._body = self._body[len(data) :]
        return data

    def release_conn(self) -> None:
        return None

    def close(self) -> None:
        return None


class _AsyncMemoryRaw(_MemoryRaw):
    """The same for an ``AsyncResponse`` (``await raw.read(...)``)."""

    async def read(  # type: ignore[override]
        self, amt: int | None = None, decode_content: bool = True
    ) -> bytes:
        return _MemoryRaw.read(self, amt)

    async def close(self) -> None:  # type: ignore[override]
        return None


_EMPTY_RAW = _MemoryRaw(b"")


def memory_raw(body: bytes) -> Any:
    """A niquests response's ``raw`` holding *body* (in memory)."""
    return _MemoryRaw(body)


def _niquests_response(
    request: Any, answered: Answered | None, *, stream: bool = False, aio: bool = False
) -> Any:
    """A niquests response to *request*: the API's constant 200, or *answered*. Streamed
    (``stream=True``, as a token session asks) its body is read from ``raw``, an
    ``AsyncResponse`` in an async session."""
    import niquests
    from niquests.structures import CaseInsensitiveDict as NiquestsHeaders

    status, headers, body = (
        (200, {"Content-Type": _JSON}, _API_BODY)
        if answered is None
        else (answered.status, answered.headers, answered.body)
    )
    if stream:
        response = niquests.AsyncResponse() if aio else niquests.Response()
        response.raw = (_AsyncMemoryRaw if aio else _MemoryRaw)(body)
    else:
        response = niquests.Response()
        response._content, response._content_consumed = body, True
        response.raw = _EMPTY_RAW
    response.status_code = status
    response.headers = NiquestsHeaders(headers)
    response.reason = "OK" if status == 200 else "Error"
    response.encoding = "utf-8"
    response.url = request.url
    response.request = request
    return response


def _is_token_request(endpoint: Emulator | None, url: str) -> bool:
    return endpoint is not None and urlsplit(url).hostname == _TOKEN_HOST


@functools.cache
def _niquests_adapter_classes() -> tuple[type, type]:
    import niquests.adapters

    class Sync(niquests.adapters.BaseAdapter):
        """A ``niquests`` adapter answering API requests itself and token requests with
        *endpoint*."""

        def __init__(self, endpoint: Emulator | None = None) -> None:
            super().__init__()
            self.endpoint = endpoint

        def send(self, request: Any, stream: bool = False, *args: Any, **kwargs: Any) -> Any:
            url = request.url or ""
            answered = None
            if _is_token_request(self.endpoint, url):
                assert self.endpoint is not None  # noqa: S101
                answered = self.endpoint.handle(
                    request.method or "GET", url, request.headers, _body_bytes(request.body)
                )
            elif API.latency:
                time.sleep(API.latency)
            response = _niquests_response(request, answered, stream=stream)
            response.connection = self
            return response

        def close(self) -> None:
            return None

    class Async(niquests.adapters.AsyncBaseAdapter):
        """The same for a ``niquests.AsyncSession``: token requests answered by the
        emulator in a worker thread (:meth:`Emulator.ahandle`), so that its latency does not
        block the loop."""

        def __init__(self, endpoint: Emulator | None = None) -> None:
            super().__init__()
            self.endpoint = endpoint

        async def send(
            self, request: Any, stream: bool = False, *args: Any, **kwargs: Any
        ) -> Any:
            url = request.url or ""
            answered = None
            if _is_token_request(self.endpoint, url):
                assert self.endpoint is not None  # noqa: S101
                answered = await self.endpoint.ahandle(
                    request.method or "GET", url, request.headers, _body_bytes(request.body)
                )
            elif API.latency:
                await asyncio.sleep(API.latency)
            response = _niquests_response(request, answered, stream=stream, aio=True)
            response.connection = self
            return response

        async def close(self) -> None:
            return None

    return Sync, Async


def NiquestsAdapter(endpoint: Emulator | None = None) -> Any:
    """A ``niquests.adapters.BaseAdapter`` answering in process (built when niquests is
    imported: it is optional)."""
    return _niquests_adapter_classes()[0](endpoint)


def AsyncNiquestsAdapter(endpoint: Emulator | None = None) -> Any:
    """A ``niquests.adapters.AsyncBaseAdapter`` answering in process."""
    return _niquests_adapter_classes()[1](endpoint)


def niquests_session(endpoint: Emulator | None = None, *, aio: bool = False) -> Any:
    """A ``niquests.Session`` (``AsyncSession`` with *aio*) answered in process, with
    ``trust_env`` off as for requests."""
    import niquests

    session = niquests.AsyncSession() if aio else niquests.Session()
    session.trust_env = False
    adapter = (AsyncNiquestsAdapter if aio else NiquestsAdapter)(endpoint)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# -- aiohttp ---------------------------------------------------------------------------------------
# aiohttp has no mock transport, and its middlewares run inside ClientSession._request, so
# patching that (as aioresponses does) would skip them. Instead, a connector whose
# connections are in memory: aiohttp's own ResponseHandler protocol on an asyncio.Transport
# that reads the HTTP/1.1 request aiohttp writes and feeds back the bytes of an answer, in a
# later turn of the loop, as a socket would. Everything above the socket (the request writer,
# the response parser, connection pooling with keep-alive) is aiohttp's own.

_API_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_API_BODY), _API_BODY)
)


def _http_answer(answered: Answered) -> bytes:
    lines = [f"HTTP/1.1 {answered.status} {'OK' if answered.status == 200 else 'Error'}"]
    pairs = answered.headers.items() if isinstance(answered.headers, Mapping) else answered.headers
    for name, value in pairs:
        if name.lower() not in ("content-length", "transfer-encoding", "connection"):
            lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(answered.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + answered.body


class _MemoryTransport(asyncio.Transport):
    """One in-memory connection: what is written to it is parsed as HTTP/1.1 requests
    (``Content-Length`` bodies, as aiohttp sends bytes and forms), each answered by bytes
    given to the protocol's ``data_received`` with ``call_soon``."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol: Any, endpoint: Emulator | None
    ) -> None:
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self._endpoint = endpoint
        self._buffer = bytearray()
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data
        self._parse()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self._buffer += chunk
        self._parse()

    def _parse(self) -> None:
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:end].decode("latin-1").split("\r\n")
            headers = [tuple(part.strip() for part in line.split(":", 1)) for line in head[1:]]
            fields = {name.lower(): value for name, value in headers}
            if "chunked" in fields.get("transfer-encoding", ""):
                raise NotImplementedError("chunked request bodies")
            stop = end + 4 + int(fields.get("content-length", "0"))
            if len(self._buffer) < stop:
                return  # the body is still to come
            body = bytes(self._buffer[end + 4 : stop])
            del self._buffer[:stop]
            method, target, _ = head[0].split(" ", 2)
            host = fields.get("host", "")
            if self._endpoint is not None and host.partition(":")[0] == _TOKEN_HOST:
                url = f"https://{host}{target}"
                task = self._loop.create_task(self._token(method, url, headers, body))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif API.latency:
                self._loop.call_later(API.latency, self._deliver, _API_ANSWER)
            else:
                self._loop.call_soon(self._deliver, _API_ANSWER)

    async def _token(
        self, method: str, url: str, headers: list[tuple[str, ...]], body: bytes
    ) -> None:
        assert self._endpoint is not None  # noqa: S101 - checked by the caller
        answered = await self._endpoint.ahandle(method, url, headers, body)
        self._deliver(_http_answer(answered))

    def _deliver(self, data: bytes) -> None:
        if not self._closing:
            self._protocol.data_received(data)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None

    def is_reading(self) -> bool:
        return not self._closing

    def can_write_eof(self) -> bool:
        return False


@functools.cache
def _connector_class() -> type:
    import aiohttp

    class Connector(aiohttp.BaseConnector):
        """An ``aiohttp`` connector whose connections are in memory
        (:class:`_MemoryTransport`), answering API requests itself and token requests with
        *endpoint*."""

        def __init__(self, endpoint: Emulator | None = None, **options: Any) -> None:
            super().__init__(**options)
            self.endpoint = endpoint

        async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> Any:
            protocol = self._factory()
            protocol.connection_made(_MemoryTransport(self._loop, protocol, self.endpoint))
            return protocol

    return Connector


def InProcessConnector(endpoint: Emulator | None = None, **options: Any) -> Any:
    """An ``aiohttp.BaseConnector`` answering in process (built when aiohttp is imported:
    it is optional); *options* go to ``BaseConnector``."""
    return _connector_class()(endpoint, **options)


def aiohttp_session(endpoint: Emulator | None = None, **options: Any) -> Any:
    """An ``aiohttp.ClientSession`` on an :func:`InProcessConnector` (in a running loop);
    *options* (``middlewares=``...) go to the session."""
    import aiohttp

    return aiohttp.ClientSession(connector=InProcessConnector(endpoint), **options)
