"""An emulator of the seed providers' token endpoints and of a protected resource per provider.

The emulator is a WSGI application (:class:`Emulator` is callable as one) that checks token
requests as each provider's document describes them, issues opaque tokens with the documented
lifetime or a configured one, and guards one protected resource per provider. Used as a
context manager it serves itself on 127.0.0.1 in a background thread.

Its state is guarded by one lock: any number of server threads may use it at once.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import secrets
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qsl, unquote
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

__all__ = ["EmulatedClient", "Emulator", "ProviderSite"]

StartResponse = Callable[..., Any]
FORM = "application/x-www-form-urlencoded"


@dataclasses.dataclass(frozen=True)
class ProviderSite:
    """Where the emulator serves one provider: its token path and protected resource."""

    name: str
    token_path: str
    resource_path: str
    #: Lifetime of issued tokens when none is configured.
    lifetime: float
    #: Whether the token answer says ``expires_in`` (Figure's does not).
    says_expires_in: bool = True


SITES: dict[str, ProviderSite] = {
    site.name: site
    for site in (
        ProviderSite("fcc_finance", "/servicing/oauth/token", "/servicing/loans", 86400),
        ProviderSite("fincalc", "/api/oauth/token", "/api/calculations", 86400),
        ProviderSite("figure", "/oauth2/token", "/profiles", 3600, says_expires_in=False),
        ProviderSite("rfc6749", "/oauth/token", "/resource", 3600),
    )
}


@dataclasses.dataclass(frozen=True)
class EmulatedClient:
    """A client registered with the emulator: what to configure an auth object with."""

    provider: str
    client_id: str | int
    client_secret: str = dataclasses.field(repr=False)
    scope: str | None = None
    extra: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``ClientCredentialsAuth`` besides ``token_url``."""
        options: dict[str, Any] = {"provider": self.provider}
        if self.scope is not None:
            options["scope"] = self.scope
        if self.extra:
            options["extra"] = dict(self.extra)
        return options


#: The clients every emulator starts with, one per provider.
DEFAULT_CLIENTS = (
    EmulatedClient("fcc_finance", "fcc-client", "fcc-secret-0123456789"),
    EmulatedClient(
        "fincalc", 12345, "fincalc-secret-0123456789", scope="api_scope",
        extra={"email_address": "demo@example.com"},
    ),
    EmulatedClient("figure", "figure-client", "figure-secret-0123456789"),
    EmulatedClient("rfc6749", "generic-client", "generic-secret-0123456789"),
)


@dataclasses.dataclass
class _Issued:
    provider: str
    client_id: str
    expires_at: float


@dataclasses.dataclass
class _Fault:
    kind: str  # "status", "slow" or "drop"
    remaining: int
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0


class _DropConnection(Exception):
    """Raised by the application to make the server close the connection unanswered."""


class _Reply(Exception):
    def __init__(self, status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = list(headers)


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class Emulator:
    """The token endpoints of ``fcc_finance``, ``fincalc``, ``figure`` and ``rfc6749``, and a
    protected resource for each.

    Example::

        with Emulator() as emulator:
            client = emulator.client("fincalc")
            auth = ClientCredentialsAuth(client.client_id, client.client_secret,
                                         token_url=emulator.token_url("fincalc"),
                                         **client.options())
            requests.get(emulator.resource_url("fincalc"), auth=auth)
            assert emulator.token_requests["fincalc"] == 1

    Args:
        host: The loopback address to serve on.
        port: The port; 0 (the default) picks a free one.
        clock: The clock token lifetimes run on (``time.monotonic`` by default).
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
            raise ValueError(f"the emulator serves on loopback only, not {host!r}")
        self._host, self._port = host, port
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], EmulatedClient] = {}
        self._tokens: dict[str, _Issued] = {}
        self._lifetimes: dict[str, float] = {}
        self._faults: list[_Fault] = []
        #: Token requests received, per provider (those answered with a fault included).
        self.token_requests: Counter[str] = Counter()
        #: Protected-resource requests received, per provider.
        self.resource_requests: Counter[str] = Counter()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        for client in DEFAULT_CLIENTS:
            self.register_client(client)

    # -- controls ---------------------------------------------------------------------------

    def register_client(self, client: EmulatedClient) -> EmulatedClient:
        """Accept *client*'s credentials (and, for FinCalc, its ``email_address``)."""
        if client.provider not in SITES:
            raise ValueError(f"unknown provider {client.provider!r}; known: {', '.join(SITES)}")
        with self._lock:
            self._clients[(client.provider, str(client.client_id))] = client
        return client

    def client(self, provider: str) -> EmulatedClient:
        """The default test client of *provider*."""
        for client in DEFAULT_CLIENTS:
            if client.provider == provider:
                return client
        raise ValueError(f"unknown provider {provider!r}; known: {', '.join(SITES)}")

    def set_lifetime(self, provider: str, seconds: float | None) -> None:
        """Issue *provider*'s next tokens for *seconds* (``None``: the documented lifetime)."""
        with self._lock:
            if seconds is None:
                self._lifetimes.pop(provider, None)
            else:
                self._lifetimes[provider] = float(seconds)

    def revoke_all(self) -> None:
        """Make every token issued so far invalid."""
        with self._lock:
            self._tokens.clear()

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None) -> None:
        """Answer the next *count* token requests with *status* (and ``Retry-After``)."""
        self._add_fault(_Fault("status", count, status=status, retry_after=retry_after))

    def slow_next(self, count: int, seconds: float) -> None:
        """Delay the answers to the next *count* token requests by *seconds*."""
        self._add_fault(_Fault("slow", count, seconds=seconds))

    def drop_next(self, count: int) -> None:
        """Close the connection of the next *count* token requests without an answer."""
        self._add_fault(_Fault("drop", count))

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError(f"count must be at least 1, not {fault.remaining}")
        with self._lock:
            self._faults.append(fault)

    def reset_counters(self) -> None:
        """Set the request counters back to zero."""
        with self._lock:
            self.token_requests.clear()
            self.resource_requests.clear()

    # -- serving ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``, once serving."""
        if self._server is None:
            raise RuntimeError("the emulator is not serving: use it as a context manager")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._server.server_port}"

    def token_url(self, provider: str) -> str:
        """The token endpoint of *provider*."""
        return self.url + self._site(provider).token_path

    def resource_url(self, provider: str) -> str:
        """The protected resource of *provider*."""
        return self.url + self._site(provider).resource_path

    def start(self) -> Emulator:
        """Serve in a background thread until :meth:`stop`."""
        if self._server is not None:
            return self
        server_class = _ThreadingServer6 if ":" in self._host else _ThreadingServer
        self._server = make_server(self._host, self._port, self, server_class, _Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="oauth-cc-emulator", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in the calling thread (``oauth-cc-auth emulator``)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not serving"
        return f"<Emulator {where}>"

    # -- the WSGI application ---------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        try:
            for site in SITES.values():
                if path == site.token_path:
                    self._token_endpoint(site, environ)
                if path == site.resource_path:
                    self._resource(site, environ)
            raise _Reply(404, {"error": "not_found"})
        except _Reply as reply:
            body = json.dumps(reply.body).encode() if reply.body is not None else b""
            headers = [("Content-Type", "application/json"), *reply.headers]
            headers.append(("Content-Length", str(len(body))))
            start_response(f"{reply.status} {_REASONS.get(reply.status, 'Status')}", headers)
            return [body]

    def _site(self, provider: str) -> ProviderSite:
        try:
            return SITES[provider]
        except KeyError:
            raise ValueError(f"unknown provider {provider!r}; known: {', '.join(SITES)}") from None

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.remaining -= 1
            if fault.remaining == 0:
                self._faults.pop(0)
            return fault

    def _token_endpoint(self, site: ProviderSite, environ: dict[str, Any]) -> None:
        with self._lock:
            self.token_requests[site.name] += 1
        fault = self._take_fault()
        if fault is not None:
            if fault.kind == "drop":
                raise _DropConnection
            if fault.kind == "slow":
                time.sleep(fault.seconds)
            else:
                headers = [("Retry-After", fault.retry_after)] if fault.retry_after else []
                raise _Reply(fault.status, {"error": "temporarily_unavailable"}, headers)
        if environ.get("REQUEST_METHOD") != "POST":
            raise _Reply(405, {"error": "invalid_request", "error_description": "use POST"},
                         [("Allow", "POST")])
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        if site.name == "fincalc":
            fields = self._fincalc_fields(content_type, raw)
        else:
            fields = self._form_fields(site, content_type, raw, environ)
        client = self._authenticate(site, fields)
        lifetime = self._lifetimes.get(site.name, site.lifetime)
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = _Issued(site.name, str(client.client_id),
                                          self._clock() + lifetime)
        answer: dict[str, Any] = {"access_token": token}
        if site.name == "fincalc":
            data = {"token_type": "Bearer", "expires_in": _seconds(lifetime),
                    "access_token": token}
            answer = {"success": True, "data": data}
        elif site.says_expires_in:
            answer["expires_in"] = _seconds(lifetime)
            answer["token_type"] = "bearer"  # noqa: S105 - a type, not a token
        raise _Reply(200, answer, [("Cache-Control", "no-store")])

    @staticmethod
    def _fincalc_failure(description: str) -> _Reply:
        return _Reply(400, {"success": False, "message": {"description": description}})

    def _fincalc_fields(self, content_type: str, raw: bytes) -> dict[str, Any]:
        if content_type != "application/json":
            raise self._fincalc_failure("The request body must be application/json.")
        try:
            fields = json.loads(raw)
        except ValueError:
            raise self._fincalc_failure("The request body is not valid JSON.") from None
        if not isinstance(fields, dict):
            raise self._fincalc_failure("The request body must be a JSON object.")
        for name in ("grant_type", "client_id", "client_secret", "scope", "email_address"):
            if fields.get(name) in (None, ""):
                raise self._fincalc_failure(
                    f"The request is missing a required parameter: {name}."
                )
        return fields

    def _form_fields(
        self, site: ProviderSite, content_type: str, raw: bytes, environ: dict[str, Any]
    ) -> dict[str, Any]:
        if content_type != FORM:
            raise _Reply(400, {"error": "invalid_request",
                               "error_description": f"Content-Type must be {FORM}"})
        fields: dict[str, Any] = dict(parse_qsl(raw.decode("utf-8", "replace")))
        header = environ.get("HTTP_AUTHORIZATION", "")
        if site.name == "rfc6749" and header.lower().startswith("basic "):
            # RFC 6749 §2.3.1: client_secret_basic, form-encoded id and secret.
            try:
                decoded = base64.b64decode(header[6:]).decode()
                client_id, _, secret = decoded.partition(":")
            except ValueError:
                raise _Reply(401, {"error": "invalid_client"}) from None
            fields.setdefault("client_id", unquote(client_id))
            fields.setdefault("client_secret", unquote(secret))
        return fields

    def _authenticate(self, site: ProviderSite, fields: Mapping[str, Any]) -> EmulatedClient:
        if fields.get("grant_type") != "client_credentials":
            if site.name == "fincalc":
                raise self._fincalc_failure("The grant_type must be client_credentials.")
            raise _Reply(400, {"error": "unsupported_grant_type"})
        with self._lock:
            client = self._clients.get((site.name, str(fields.get("client_id"))))
        good = client is not None and secrets.compare_digest(
            str(fields.get("client_secret", "")).encode(), client.client_secret.encode()
        )
        if client is not None and good and site.name == "fincalc":
            good = fields.get("email_address") == client.extra.get("email_address")
        if client is None or not good:
            if site.name == "fincalc":
                raise self._fincalc_failure("The client credentials are invalid.")
            raise _Reply(401, {"error": "invalid_client",
                               "error_description": "Client authentication failed."})
        return client

    def _resource(self, site: ProviderSite, environ: dict[str, Any]) -> None:
        with self._lock:
            self.resource_requests[site.name] += 1
        header = environ.get("HTTP_AUTHORIZATION", "")
        challenge = [("WWW-Authenticate", 'Bearer error="invalid_token"')]
        if not header.startswith("Bearer "):
            raise _Reply(401, {"error": "invalid_token"}, [("WWW-Authenticate", "Bearer")])
        with self._lock:
            issued = self._tokens.get(header[7:])
            valid = (
                issued is not None
                and issued.provider == site.name
                and self._clock() < issued.expires_at
            )
        if not valid or issued is None:
            raise _Reply(401, {"error": "invalid_token"}, challenge)
        raise _Reply(200, {"provider": site.name, "client_id": issued.client_id, "ok": True})


def _seconds(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


# -- the server ---------------------------------------------------------------------------------


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops connections from a few dozen clients at once,
    # and the kernel then retries them a second later.
    request_queue_size = 256


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _Handler(WSGIRequestHandler):
    """wsgiref's handler, quiet, and able to drop a connection unanswered."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        # As WSGIRequestHandler.handle, with a ServerHandler that knows this handler.
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _ServerHandler(
            self.rfile, self.wfile, self.get_stderr(), self.get_environ(),  # type: ignore[arg-type]
            multithread=True,
        )
        handler.request_handler = self
        handler.run(self.server.get_app())  # type: ignore[attr-defined]


class _ServerHandler(ServerHandler):
    request_handler: _Handler

    def handle_error(self) -> None:
        if isinstance(sys.exc_info()[1], _DropConnection):
            self.request_handler.close_connection = True
            with contextlib.suppress(OSError):
                self.request_handler.connection.shutdown(socket.SHUT_RDWR)
            return
        super().handle_error()

    def log_exception(self, exc_info: Any) -> None:
        if not isinstance(exc_info[1], _DropConnection):
            super().log_exception(exc_info)
