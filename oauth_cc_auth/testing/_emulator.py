"""An emulator of the seed providers' token endpoints and of a protected resource per provider.

The emulator is a WSGI application (:class:`Emulator` is callable as one) that checks token
requests as each provider's document describes them, issues opaque tokens with the documented
lifetime or a configured one, and guards one protected resource per provider. Used as a
context manager it serves itself on 127.0.0.1 in a background thread: one request per
connection, or with ``keep_alive`` HTTP/1.1 persistent connections.

The seed providers take ``client_secret_post`` only. The generic ``rfc6749`` site authenticates
clients as a strict authorization server does: ``client_secret_post``, ``client_secret_basic``
(RFC 6749 §2.3.1, form-encoded), ``client_secret_jwt`` and ``private_key_jwt`` (RFC 7523 §2.2,
verified with joserfc, one-time ``jti``), and one method per request (RFC 6749 §2.3); no
parameter twice (§3.2) but ``resource`` (RFC 8707 §2).

The identity providers of the presets (``auth0``, ``entra``, ``okta``, ``keycloak``,
``cognito``, ``salesforce``, ``pingone``, ``zitadel``) are served on demand,
:meth:`Emulator.add_preset`, at their documented token path or one the test chooses, each with
its quirks as one row of a table of rules (``_PRESET_RULES``): Auth0 answers a request without
``audience`` 403 ``access_denied``; Entra wants one ``.../.default`` scope (400
``invalid_scope``, AADSTS descriptions and ``error_codes``); Okta's org server
(``/oauth2/v1/token``) takes ``okta.*`` scopes only; Keycloak issues 300-second tokens; Cognito
takes a client secret only and ``resource-server/scope`` scopes, and its errors say ``error``
only; Salesforce answers without ``expires_in`` (with ``instance_url`` and ``issued_at``);
PingOne's errors have its ``id``/``code``/``message`` shape; ZITADEL wants a
``urn:zitadel:iam:org:project:id:{id}:aud`` scope. Each preset has a test client
(:meth:`Emulator.client`) with the scope or ``extra`` its preset needs.

Every token endpoint and protected resource verifies DPoP proofs (RFC 9449, module
``_dpop``): a token request with a ``DPoP`` proof gets a DPoP-bound token (``token_type``
``DPoP``, bound to the thumbprint of the proof's key), usable at the resource only with
``Authorization: DPoP`` and a proof of that key with ``ath``; a refused proof is 400
``invalid_dpop_proof`` (401 with a ``DPoP`` challenge at a resource). A ``dpop_bound`` client
must send a proof; :meth:`Emulator.demand_dpop_nonce` makes an endpoint demand a server nonce
(``use_dpop_nonce``, ``DPoP-Nonce``). A request without a proof is served as before.

Served over loopback, or in process (:meth:`Emulator.handle`, for a mock transport): the same
application either way. Over TLS (``ssl_context=``), the ``rfc6749`` site also takes mutual-TLS
clients and binds tokens to client certificates (RFC 8705; ``_tls``). Tests script it:
:meth:`Emulator.answer_next` queues answers of any kind (:class:`Reply`), :meth:`Emulator.gate`
holds token requests until the test opens it, :attr:`Emulator.received` records every request.

Its state is guarded by one lock: any number of server threads may use it at once.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import itertools
import json
import math
import re
import secrets
import socket
import ssl
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler
from socketserver import ThreadingMixIn
from typing import Any, Literal, TypeGuard, cast
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import application_uri, request_uri

from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeyFlexible, KeySet, KeySetSerialization, OctKey

from oauth_cc_auth.testing import _dpop, _tls

__all__ = [
    "Answered", "EmulatedClient", "Emulator", "Gate", "NoAnswer", "ProviderSite", "Received",
    "Reply",
]

StartResponse = Callable[..., Any]
FORM = "application/x-www-form-urlencoded"
#: RFC 7523 §2.2: the ``client_assertion_type`` of a JWT client assertion.
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# client_secret_jwt: HMAC with the client secret. private_key_jwt: the client's public keys.
# Kept apart so that an HMAC assertion is never checked against a public key (alg confusion).
_HMAC_ALGS = ("HS256", "HS384", "HS512")
_KEY_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
             "ES256K", "EdDSA", "Ed25519", "Ed448")
#: Seconds a client assertion's ``iat`` (or ``nbf``) may lie ahead of this host's clock.
_CLOCK_SKEW = 5.0


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
class _Refusal:
    """An answer refusing a token request: status, OAuth ``error`` and description (``{}``:
    the field or scope concerned)."""

    status: int
    error: str
    description: str = ""


@dataclasses.dataclass(frozen=True)
class _PresetRules:
    """How an identity provider's token endpoint differs from RFC 6749 (one row of
    :data:`_PRESET_RULES`): what it refuses, and in which shape, and what its answer says."""

    #: The client authentication it takes: ``client_secret_basic``, ``client_secret_post``,
    #: ``client_assertion`` (client_secret_jwt and private_key_jwt).
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post",
                                     "client_assertion")
    #: Its answer to wrong credentials or an authentication method it does not take.
    bad_client: _Refusal = _Refusal(401, "invalid_client", "Client authentication failed.")
    #: Fields the request must have, and the answer when one is missing.
    required: Mapping[str, _Refusal] = dataclasses.field(default_factory=dict)
    #: The answer when a required field is not the value registered for the client (its
    #: ``extra``), e.g. an API Auth0 does not know.
    unknown_value: _Refusal = _Refusal(400, "invalid_request", "unknown value {}")
    #: Every requested scope must match this (a regular expression), on token paths matching
    #: ``scope_paths``; else ``scope_refusal``.
    every_scope: str | None = None
    scope_paths: str = ".*"
    #: At least one requested scope must match this; else ``scope_refusal``.
    some_scope: str | None = None
    scope_refusal: _Refusal = _Refusal(400, "invalid_scope", "invalid scope: {}")
    #: ``"oauth"`` (RFC 6749 §5.2), ``"entra"`` (plus ``error_codes``, ``trace_id``...),
    #: ``"bare"`` (``error`` only, Cognito) or ``"pingone"`` (``id``, ``code``, ``message``).
    error_shape: Literal["oauth", "entra", "bare", "pingone"] = "oauth"
    #: Further fields of the token answer (``issued_at`` is filled in, in milliseconds).
    answer_fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)


#: The identity providers whose presets the emulator emulates (:meth:`Emulator.add_preset`):
#: their token endpoint at the documented path (mounted on demand: Auth0's and Cognito's are
#: the ``rfc6749`` and ``figure`` sites' paths) and a protected resource under ``/<name>/``.
PRESET_SITES: dict[str, ProviderSite] = {
    site.name: site
    for site in (
        ProviderSite("auth0", "/oauth/token", "/auth0/api", 86400),
        ProviderSite("entra", "/tenant-a/oauth2/v2.0/token", "/entra/api", 3599),
        ProviderSite("okta", "/oauth2/default/v1/token", "/okta/api", 3600),
        ProviderSite("keycloak", "/realms/demo/protocol/openid-connect/token",
                     "/keycloak/api", 300),
        ProviderSite("cognito", "/oauth2/token", "/cognito/api", 3600),
        ProviderSite("salesforce", "/services/oauth2/token", "/salesforce/api", 7200,
                     says_expires_in=False),
        ProviderSite("pingone", "/environment-1/as/token", "/pingone/api", 3600),
        ProviderSite("zitadel", "/oauth/v2/token", "/zitadel/api", 43200),
    )
}

_PRESET_RULES: dict[str, _PresetRules] = {
    # Auth0 answers a missing audience (with no default audience) and an unknown API 403.
    "auth0": _PresetRules(
        auth_methods=("client_secret_post", "client_secret_basic", "client_assertion"),
        bad_client=_Refusal(401, "access_denied", "Unauthorized"),
        required={"audience": _Refusal(403, "access_denied", "No audience parameter was "
                                       "provided, and no default audience has been configured")},
        unknown_value=_Refusal(403, "access_denied", "Service not found: {}"),
    ),
    "entra": _PresetRules(
        auth_methods=("client_secret_post", "client_secret_basic", "client_assertion"),
        bad_client=_Refusal(401, "invalid_client", "AADSTS7000215: Invalid client secret "
                            "provided. Ensure the secret being sent in the request is the client "
                            "secret value, not the client secret ID."),
        required={"scope": _Refusal(400, "invalid_request", "AADSTS900144: The request body "
                                    "must contain the following parameter: '{}'.")},
        every_scope=r".+/\.default",
        scope_refusal=_Refusal(400, "invalid_scope", "AADSTS1002012: The provided value for "
                               "scope {} is not valid. Client credential flows must have a scope "
                               "value with /.default suffixed to the resource identifier "
                               "(application ID URI)."),
        error_shape="entra",
        answer_fields={"ext_expires_in": 3599},
    ),
    # The org authorization server (/oauth2/v1/token) issues Okta's own okta.* scopes only.
    "okta": _PresetRules(
        bad_client=_Refusal(401, "invalid_client", "The client secret supplied for a "
                            "confidential client is invalid."),
        every_scope=r"okta\..+", scope_paths=r"(/.+)?/oauth2/v1/token",
        scope_refusal=_Refusal(400, "invalid_scope", "One or more scopes are not configured for "
                               "the authorization server resource."),
    ),
    "keycloak": _PresetRules(
        bad_client=_Refusal(401, "unauthorized_client",
                            "Invalid client or Invalid client credentials"),
        answer_fields={"refresh_expires_in": 0, "not-before-policy": 0, "scope": "profile email"},
    ),
    # Cognito: a client secret only (no JWT), custom scopes only; errors say ``error`` only.
    "cognito": _PresetRules(
        auth_methods=("client_secret_basic", "client_secret_post"),
        bad_client=_Refusal(400, "invalid_client"),
        every_scope=r"[^/\s]+/[^\s]+", scope_refusal=_Refusal(400, "invalid_scope"),
        error_shape="bare",
    ),
    # Salesforce: no expires_in; the org's instance and the issue time instead.
    "salesforce": _PresetRules(
        auth_methods=("client_secret_post", "client_secret_basic"),
        bad_client=_Refusal(400, "invalid_client", "invalid client credentials"),
        answer_fields={"instance_url": None,
                       "id": "https://login.salesforce.com/id/00D000000000001/005000000000001",
                       "signature": "emulated", "scope": "api", "issued_at": None},
    ),
    "pingone": _PresetRules(
        bad_client=_Refusal(401, "ACCESS_FAILED", "Request denied: Invalid client credentials"),
        error_shape="pingone",
    ),
    "zitadel": _PresetRules(
        auth_methods=("client_secret_basic", "client_secret_post"),
        bad_client=_Refusal(401, "invalid_client", "client authentication failed"),
        required={"scope": _Refusal(400, "invalid_request", "The request is missing '{}'.")},
        some_scope=r"urn:zitadel:iam:org:project:id:[^:\s]+:aud",
        scope_refusal=_Refusal(400, "invalid_scope", "no project audience requested: add the "
                               "scope urn:zitadel:iam:org:project:id:{{projectId}}:aud"),
    ),
}


@dataclasses.dataclass(frozen=True)
class EmulatedClient:
    """A client registered with the emulator: what to configure an auth object with.

    A ``rfc6749`` client may have no secret and a public JWK Set (``jwks``, ``{"keys": [...]}``)
    instead, for ``private_key_jwt`` (or, with ``x5c``, ``self_signed_tls_client_auth``), or a
    ``tls_client_auth_subject_dn``; the seed providers' clients need a secret. A
    ``dpop_bound`` client gets DPoP-bound tokens only: a token request without a DPoP proof
    is refused (400 ``invalid_dpop_proof``).
    """

    provider: str
    client_id: str | int
    client_secret: str | None = dataclasses.field(default=None, repr=False)
    scope: str | None = None
    extra: Mapping[str, str] = dataclasses.field(default_factory=dict)
    jwks: Mapping[str, Any] | None = None
    #: Its token requests must carry a DPoP proof (RFC 9449).
    dpop_bound: bool = False
    #: RFC 8705 §2.1.2: the subject DN (RFC 4514) of the client's certificate, for
    #: ``tls_client_auth`` (a self-signed certificate goes in ``jwks``, as a key's ``x5c``).
    tls_client_auth_subject_dn: str | None = None

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``ClientCredentialsAuth`` besides ``token_url``
        (``dpop=True`` for a ``dpop_bound`` client)."""
        options: dict[str, Any] = {"provider": self.provider}
        if self.dpop_bound:
            options["dpop"] = True
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

#: The test client of each preset (:data:`PRESET_SITES`), with the options its preset needs.
PRESET_CLIENTS = (
    EmulatedClient("auth0", "auth0-client", "auth0-secret-0123456789",
                   extra={"audience": "https://api.example.com"}),
    EmulatedClient("entra", "00000000-0000-0000-0000-00000000e001", "entra-secret-0123456789",
                   scope="api://emulated-api/.default"),
    EmulatedClient("okta", "okta-client", "okta-secret-0123456789", scope="emulated.read"),
    EmulatedClient("keycloak", "keycloak-client", "keycloak-secret-0123456789"),
    EmulatedClient("cognito", "cognito-client", "cognito-secret-0123456789",
                   scope="emulated-api/read"),
    EmulatedClient("salesforce", "salesforce-consumer-key", "salesforce-secret-0123456789"),
    EmulatedClient("pingone", "pingone-client", "pingone-secret-0123456789"),
    EmulatedClient("zitadel", "zitadel-client", "zitadel-secret-0123456789",
                   scope="urn:zitadel:iam:org:project:id:123456789:aud"),
)


@dataclasses.dataclass
class _Issued:
    provider: str
    client_id: str
    expires_at: float
    #: The thumbprint of the key a DPoP-bound token is bound to (RFC 9449 §6).
    jkt: str | None = None
    #: RFC 8705 §3: the ``x5t#S256`` of the client certificate the token is bound to.
    x5t: str | None = None


@dataclasses.dataclass
class _Fault:
    kind: str  # "status", "slow" or "drop"
    remaining: int
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0


class _DropConnection(Exception):
    """Raised by the application to make the server close the connection unanswered."""

    def __init__(self, kind: str = "drop") -> None:
        super().__init__(kind)
        self.kind = kind


class _Reply(Exception):
    def __init__(
        self, status: int, body: Any, headers: Iterable[tuple[str, str]] = (),
        raw: bytes | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = list(headers)
        #: The body as is, instead of *body* as JSON.
        self.raw = raw


@dataclasses.dataclass
class Reply:
    """A scripted answer (:meth:`Emulator.answer_next`): a status with a JSON document
    (``json``) or raw bytes (``body``) and headers; or no answer at all, ``fail``:
    ``"connect"``, ``"timeout"`` or ``"drop"`` (in process :meth:`Emulator.handle` raises
    :class:`NoAnswer` of that kind; over loopback the connection is closed unanswered).

    A JSON answer holding an ``access_token`` (also inside a ``data`` object) makes that token
    valid at the protected resources, until :meth:`Emulator.revoke_all`.
    """

    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    fail: Literal["connect", "timeout", "drop"] | None = None


@dataclasses.dataclass(frozen=True)
class Received:
    """One request the emulator received."""

    method: str
    url: str
    #: Header names in lower case.
    headers: Mapping[str, str]
    body: bytes
    #: ``"token"``, ``"resource"`` or ``"other"`` (a path the emulator does not serve).
    endpoint: str
    #: The client's address and port over loopback (one per connection); ``None`` in process.
    peer: tuple[str, int] | None = None


@dataclasses.dataclass(frozen=True)
class Answered:
    """The answer of :meth:`Emulator.handle`."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class NoAnswer(Exception):
    """In process: the request got no answer, as scripted (``kind``: ``"connect"``,
    ``"timeout"`` or ``"drop"``). A mock transport raises its library's error for it."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"the emulator gave no answer ({kind})")
        self.kind = kind


class Gate:
    """Holds token (and metadata) requests until :meth:`open` (from :meth:`Emulator.gate`).

    :meth:`wait_for` blocks until a number of requests wait at the gate, so that a test opens
    it when every caller it started is in place, never after a guessed sleep. A request held
    longer than *limit* seconds is answered 503, so that a test that forgets to open the gate
    fails instead of hanging.
    """

    def __init__(self, limit: float = 30.0) -> None:
        self._condition = threading.Condition()
        self._open = False
        self._limit = limit
        #: How many requests wait at the gate now.
        self.waiting = 0
        #: How many requests have come to the gate in all.
        self.arrived = 0

    def open(self) -> None:
        """Let every held request, and every later one, through."""
        with self._condition:
            self._open = True
            self._condition.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until *count* requests have come to the gate (waiting or let through);
        ``False`` after *timeout* seconds."""
        with self._condition:
            return self._condition.wait_for(lambda: self.arrived >= count, timeout)

    def _pass(self) -> bool:
        with self._condition:
            self.arrived += 1
            self.waiting += 1
            self._condition.notify_all()
            try:
                return self._condition.wait_for(lambda: self._open, self._limit)
            finally:
                self.waiting -= 1


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class Emulator:
    """The token endpoints of ``fcc_finance``, ``fincalc``, ``figure`` and ``rfc6749``, and a
    protected resource for each; those of the identity provider presets once mounted
    (:meth:`add_preset`).

    Example::

        with Emulator() as emulator:
            client = emulator.client("fincalc")
            auth = ClientCredentialsAuth(client.client_id, client.client_secret,
                                         token_url=emulator.token_url("fincalc"),
                                         **client.options())
            requests.get(emulator.resource_url("fincalc"), auth=auth)
            assert emulator.token_requests["fincalc"] == 1

            emulator.add_preset("keycloak")  # .../realms/demo/protocol/openid-connect/token
            client = emulator.client("keycloak")
            auth = ClientCredentialsAuth(client.client_id, client.client_secret,
                                         token_url=emulator.token_url("keycloak"),
                                         **client.options())

    Args:
        host: The loopback address to serve on.
        port: The port; 0 (the default) picks a free one.
        clock: The clock token lifetimes run on (``time.monotonic`` by default). Client
            assertions' ``exp`` and ``iat`` are wall-clock times: they are checked against
            ``time.time()``.
        token_prefix: Issue predictable tokens, ``<prefix>1``, ``<prefix>2``... (for tests
            that name them); by default tokens are random.
        guard_every_path: Treat every path that is not a token endpoint or another
            provider's resource as the ``rfc6749`` protected resource (any API URL of a test).
        keep_alive: Over loopback, keep HTTP/1.1 connections open for further requests, as
            real servers do (:attr:`Received.peer` tells them apart), instead of closing each
            one after its answer. :meth:`stop` closes those still open.
        ssl_context: A server-side ``ssl.SSLContext``: serve ``https://`` with it, and with
            mutual TLS when it requests client certificates (``verify_mode``): the
            ``tls_client_auth`` and ``self_signed_tls_client_auth`` clients, and tokens bound
            to the certificate (RFC 8705; ``testing/_tls.py``).

    DPoP (RFC 9449): a token request with a ``DPoP`` header has its proof verified (one
    header; a JWS with ``typ`` ``dpop+jwt``, an asymmetric ``alg`` of
    ``dpop_signing_alg_values_supported``, a public ``jwk`` header that verifies it; ``htm``
    the method, ``htu`` the URL as addressed without query and fragment, normalised; ``iat``
    within 60 s of ``time.time()``; a ``jti`` never seen before, remembered for 5 minutes;
    the ``nonce`` when one is demanded) and gets a token bound to the key's RFC 7638
    thumbprint, ``token_type`` ``DPoP``; else 400 ``invalid_dpop_proof``. At a resource, a
    bound token is good only as ``Authorization: DPoP <token>`` with a proof of the same key
    whose ``ath`` is the token's hash (else 401 and ``WWW-Authenticate: DPoP
    error="invalid_dpop_proof"`` or ``error="invalid_token"``); an unbound token only as
    ``Bearer``. An ``EmulatedClient(..., dpop_bound=True)`` must send a proof.
    :meth:`demand_dpop_nonce` makes the token endpoints (or resources) demand a nonce:
    ``use_dpop_nonce`` (400, or 401 at a resource) with ``DPoP-Nonce`` when it is missing or
    stale, and ``DPoP-Nonce`` on every answer there. :attr:`dpop_refusals` counts refusals by
    error and by reason (``replayed``, ``nonce``, ``htu``...). A request without a proof is
    served as it would be without DPoP, and scripted answers, faults and gates come first.
    """

    #: The longest ``exp - iat`` accepted in a client assertion, in seconds (Okta's rule).
    max_assertion_lifetime: float = 3600.0
    #: How many of the most recent requests :attr:`received` keeps (a long soak stays small).
    max_received: int = 10_000

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        token_prefix: str | None = None,
        guard_every_path: bool = False,
        keep_alive: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
            raise ValueError(f"the emulator serves on loopback only, not {host!r}")
        self._host, self._port = host, port
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], EmulatedClient] = {}
        self._key_sets: dict[tuple[str, str], KeySet] = {}
        # (client id, jti) of accepted client assertions -> their exp, forgotten after it.
        self._seen_jtis: dict[tuple[str, str], float] = {}
        self._client_assertions: list[str] = []
        self._tokens: dict[str, _Issued] = {}
        self._lifetimes: dict[str, float] = {}
        self._faults: list[_Fault] = []
        self._token_prefix = token_prefix
        self._serial = itertools.count(1)
        self._guard_every_path = guard_every_path
        # Paths served as further token endpoints of the rfc6749 site (add_token_path).
        self._token_paths: frozenset[str] = frozenset()
        # The presets mounted (add_preset), by name, with the token path they are served at.
        self._presets: dict[str, ProviderSite] = {}
        self._keep_alive = keep_alive
        self._ssl_context = ssl_context
        self._scripts: dict[str, list[Reply]] = {"token": [], "resource": [], "metadata": []}
        #: Fields merged into every metadata document it serves (a value ``None`` removes
        #: the field): what a test needs a server to say, e.g. ``{"issuer": "elsewhere"}``.
        self.metadata_fields: dict[str, Any] = {}
        self._received: deque[Received] = deque(maxlen=self.max_received)
        self._gate: Gate | None = None
        #: Seconds every token request takes to be answered (a network round trip).
        self.latency = 0.0
        #: Token requests received, per provider (those answered with a fault included).
        self.token_requests: Counter[str] = Counter()
        #: Protected-resource requests received, per provider.
        self.resource_requests: Counter[str] = Counter()
        # DPoP (RFC 9449): the nonce each endpoint ("token", "resource") demands, if it does,
        # and the jtis of the proofs accepted.
        self._dpop_nonces: dict[str, str] = {}
        self._dpop_jtis = _dpop.SeenJtis()
        #: DPoP proofs refused, by error (``invalid_dpop_proof``, ``use_dpop_nonce``,
        #: ``invalid_token``) and by reason (``missing``, ``typ``, ``signature``, ``htm``,
        #: ``htu``, ``iat``, ``ath``, ``jkt``, ``replayed``, ``nonce``...).
        self.dpop_refusals: Counter[str] = Counter()
        self._server: _ThreadingServer | None = None
        self._thread: threading.Thread | None = None
        for client in (*DEFAULT_CLIENTS, *PRESET_CLIENTS):
            self.register_client(client)

    # -- controls ---------------------------------------------------------------------------

    def register_client(self, client: EmulatedClient) -> EmulatedClient:
        """Accept *client*'s credentials (and, for FinCalc, its ``email_address``).

        Raises:
            ValueError: unknown provider; neither a secret nor a JWK Set (a seed provider's
                client needs a secret); an empty secret; ``jwks`` not a set of public keys.
        """
        if client.provider not in SITES and client.provider not in PRESET_SITES:
            raise ValueError(f"unknown provider {client.provider!r}; known: "
                             f"{', '.join([*SITES, *PRESET_SITES])}")
        if client.client_secret == "":
            raise ValueError("client_secret must not be empty (None: no secret)")
        tls = client.tls_client_auth_subject_dn is not None
        if client.client_secret is None and (
            (client.jwks is None and not tls) or client.provider != "rfc6749"
        ):
            raise ValueError(
                "a client needs a client_secret" if client.provider != "rfc6749"
                else "a client needs a client_secret or a jwks"
            )
        key_set = _public_key_set(client.jwks) if client.jwks is not None else None
        key = (client.provider, str(client.client_id))
        with self._lock:
            self._clients[key] = client
            if key_set is None:
                self._key_sets.pop(key, None)
            else:
                self._key_sets[key] = key_set
        return client

    def client(self, provider: str) -> EmulatedClient:
        """The default test client of *provider* (a seed provider or a preset), as
        registered now (:meth:`register_client` may have replaced it)."""
        for client in (*DEFAULT_CLIENTS, *PRESET_CLIENTS):
            if client.provider == provider:
                with self._lock:
                    return self._clients.get((provider, str(client.client_id)), client)
        raise ValueError(f"unknown provider {provider!r}; known: "
                         f"{', '.join([*SITES, *PRESET_SITES])}")

    def add_preset(self, name: str, path: str | None = None) -> ProviderSite:
        """Serve the token endpoint of the preset *name* (one of :data:`PRESET_SITES`:
        ``auth0``, ``entra``, ``okta``, ``keycloak``, ``cognito``, ``salesforce``,
        ``pingone``, ``zitadel``) at *path*, by default its documented path (e.g.
        ``/oauth/token`` for Auth0), with its quirks, and its protected resource at
        ``/<name>/api``. The preset's path goes before the other sites' (as
        :meth:`add_token_path`): mounting ``auth0`` or ``cognito`` at their documented paths
        takes ``/oauth/token`` from the ``rfc6749`` site and ``/oauth2/token`` from
        ``figure`` on this emulator. :meth:`token_url` and :meth:`resource_url` then name it.

        Returns:
            The mounted site.

        Raises:
            ValueError: an unknown preset; *path* not starting with ``/``, or a path another
                mounted preset or a protected resource is served at.
        """
        if name not in PRESET_SITES:
            raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESET_SITES)}")
        site = PRESET_SITES[name]
        path = site.token_path if path is None else path
        if not path.startswith("/"):
            raise ValueError(f"a token path starts with '/', not {path!r}")
        resources = {s.resource_path for s in (*SITES.values(), *PRESET_SITES.values())}
        with self._lock:
            taken = {s.token_path for s in self._presets.values() if s.name != name}
            if path in taken or path in resources:
                raise ValueError(f"{path!r} is already served (a preset or a resource)")
            self._presets[name] = mounted = dataclasses.replace(site, token_path=path)
        return mounted

    def add_token_path(self, path: str) -> None:
        """Serve *path* (e.g. ``/realms/demo/protocol/openid-connect/token``) as a token
        endpoint of the generic ``rfc6749`` site, before any seed provider's own path: for an
        identity provider's token URL whose path no site has. Its tokens are good at the
        ``rfc6749`` resource (with ``guard_every_path``, at any API URL).

        Raises:
            ValueError: *path* does not start with ``/``.
        """
        if not path.startswith("/"):
            raise ValueError(f"a token path starts with '/', not {path!r}")
        with self._lock:
            self._token_paths = self._token_paths | {path}

    def set_lifetime(self, provider: str, seconds: float | None) -> None:
        """Issue *provider*'s next tokens for *seconds* (``None``: the documented lifetime)."""
        with self._lock:
            if seconds is None:
                self._lifetimes.pop(provider, None)
            else:
                self._lifetimes[provider] = float(seconds)

    def revoke_all(self, provider: str | None = None) -> None:
        """Make every token issued so far invalid (with *provider*: that provider's only)."""
        with self._lock:
            if provider is None:
                self._tokens.clear()
            else:
                for token in [t for t, issued in self._tokens.items()
                              if issued.provider == provider]:
                    del self._tokens[token]

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None) -> None:
        """Answer the next *count* token requests with *status* (and ``Retry-After``)."""
        self._add_fault(_Fault("status", count, status=status, retry_after=retry_after))

    def slow_next(self, count: int, seconds: float) -> None:
        """Delay the answers to the next *count* token requests by *seconds*."""
        self._add_fault(_Fault("slow", count, seconds=seconds))

    def drop_next(self, count: int) -> None:
        """Close the connection of the next *count* token requests without an answer."""
        self._add_fault(_Fault("drop", count))

    def answer_next(self, *replies: Reply, endpoint: str = "token") -> None:
        """Answer the next requests to any token endpoint (or, with ``endpoint="resource"``,
        to any protected resource; ``"metadata"``, any metadata URL) with *replies*, in
        order, instead of serving them."""
        if endpoint not in self._scripts:
            raise ValueError(
                f"endpoint must be 'token', 'resource' or 'metadata', not {endpoint!r}"
            )
        with self._lock:
            self._scripts[endpoint].extend(replies)

    def gate(self, limit: float = 30.0) -> Gate:
        """Hold every token request (and metadata request) from now on at a new
        :class:`Gate` until it is opened."""
        gate = Gate(limit)
        with self._lock:
            self._gate = gate
        return gate

    def demand_dpop_nonce(self, endpoint: str = "token") -> str:
        """From now on, DPoP proofs at the token endpoints (``endpoint="resource"``: at the
        protected resources) must carry a server nonce (RFC 9449 §8, §9): a new one, returned;
        the previous one is stale from now on. A proof without it or with a stale one is
        refused ``use_dpop_nonce`` with the nonce in a ``DPoP-Nonce`` header, and every answer
        of that endpoint carries it."""
        if endpoint not in ("token", "resource"):
            raise ValueError(f"endpoint must be 'token' or 'resource', not {endpoint!r}")
        nonce = secrets.token_urlsafe(16)
        with self._lock:
            self._dpop_nonces[endpoint] = nonce
        return nonce

    def stop_demanding_dpop_nonce(self, endpoint: str = "token") -> None:
        """Take DPoP proofs at *endpoint* without a nonce again."""
        with self._lock:
            self._dpop_nonces.pop(endpoint, None)

    @property
    def received(self) -> list[Received]:
        """The requests received so far (the most recent :attr:`max_received`), in order."""
        with self._lock:
            return list(self._received)

    def received_at(self, endpoint: str) -> list[Received]:
        """The requests received at ``"token"`` endpoints or ``"resource"`` URLs, in order."""
        return [r for r in self.received if r.endpoint == endpoint]

    def handle(
        self, method: str, url: str, headers: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes = b"",
    ) -> Answered:
        """Answer one request in process, without a server: what a mock transport calls.

        Raises:
            NoAnswer: the request was scripted to get no answer.
        """
        parts = urlsplit(url)
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method.upper(),
            "PATH_INFO": unquote(parts.path) or "/",
            "QUERY_STRING": parts.query,
            # An IPv6 address in brackets, as a URL names it (request_uri adds none).
            "SERVER_NAME": (f"[{parts.hostname}]" if ":" in (parts.hostname or "")
                            else parts.hostname or "localhost"),
            "SERVER_PORT": str(parts.port or (443 if parts.scheme == "https" else 80)),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": parts.scheme or "http",
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
        }
        for name, value in pairs:
            key = name.upper().replace("-", "_")
            if key == "CONTENT_LENGTH":
                continue
            if key != "CONTENT_TYPE":
                key = "HTTP_" + key
            environ[key] = f"{environ[key]}, {value}" if key in environ else value
        answer: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
            answer["status"] = int(status.split(" ", 1)[0])
            answer["headers"] = response_headers

        try:
            chunks = self(environ, start_response)
        except _DropConnection as dropped:
            raise NoAnswer(dropped.kind) from None
        return Answered(answer["status"], answer["headers"], b"".join(chunks))

    async def ahandle(
        self, method: str, url: str, headers: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes = b"",
    ) -> Answered:
        """:meth:`handle` in a worker thread, so that a gate or a latency never blocks the
        event loop (asyncio or trio, through anyio)."""
        import anyio.to_thread

        return await anyio.to_thread.run_sync(
            lambda: self.handle(method, url, list(
                headers.items() if isinstance(headers, Mapping) else headers), body),
            abandon_on_cancel=True,
        )

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError(f"count must be at least 1, not {fault.remaining}")
        with self._lock:
            self._faults.append(fault)

    def reset_counters(self) -> None:
        """Set the request counters back to zero and forget the requests and client
        assertions received."""
        with self._lock:
            self.token_requests.clear()
            self.resource_requests.clear()
            self._client_assertions.clear()
            self._received.clear()
            self.dpop_refusals.clear()

    @property
    def client_assertions(self) -> list[str]:
        """Every ``client_assertion`` received so far, in order, refused ones included (a copy)."""
        with self._lock:
            return list(self._client_assertions)

    # -- serving ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>`` (``https`` with ``ssl_context``), once
        serving."""
        if self._server is None:
            raise RuntimeError("the emulator is not serving: use it as a context manager")
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "http" if self._ssl_context is None else "https"
        return f"{scheme}://{host}:{self._server.server_port}"

    @property
    def issuer(self) -> str:
        """The authorization server's identifier, its base URL: an ``aud`` it accepts."""
        return self.url

    def tenant_issuer(self, tenant: str = "tenant-a") -> str:
        """An issuer with a path, ``http://127.0.0.1:<port>/<tenant>``: its metadata is
        served too (RFC 8414 §3.1), naming the ``rfc6749`` token endpoint."""
        return f"{self.url}/{tenant.strip('/')}"

    def token_url(self, provider: str) -> str:
        """The token endpoint of *provider*."""
        site = self._site(provider)
        return self.url + site.token_path

    def resource_url(self, provider: str) -> str:
        """The protected resource of *provider*."""
        site = self._site(provider)
        return self.url + site.resource_path

    def start(self) -> Emulator:
        """Serve in a background thread until :meth:`stop`."""
        if self._server is not None:
            return self
        server_class = _ThreadingServer6 if ":" in self._host else _ThreadingServer
        handler_class: type[_Handler] = _KeepAliveHandler if self._keep_alive else _Handler
        if self._ssl_context is not None:
            server_class, handler_class = _tls.secured(server_class, handler_class,
                                                       self._ssl_context)
        self._server = make_server(self._host, self._port, self, server_class, handler_class)
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
            if self._keep_alive:
                server.close_connections()
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
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        site, endpoint = self._route(path)
        headers = {
            name[5:].replace("_", "-").lower(): str(value)
            for name, value in environ.items() if name.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        with self._lock:
            self._received.append(Received(
                environ.get("REQUEST_METHOD", "GET"), request_uri(environ), headers, raw,
                endpoint, _peer(environ),
            ))
        try:
            if site is None:
                raise _Reply(404, {"error": "not_found"})
            if endpoint == "metadata":
                self._metadata(site, environ)
            if endpoint == "token":
                self._token_endpoint(site, environ)
            self._resource(site, environ)
        except _Reply as reply:
            if reply.raw is not None:
                body, answer_headers = reply.raw, list(reply.headers)
            else:
                body = json.dumps(reply.body).encode() if reply.body is not None else b""
                answer_headers = [("Content-Type", "application/json"), *reply.headers]
                if any(name.lower() == "content-type" for name, _ in reply.headers):
                    answer_headers.pop(0)
            answer_headers.extend(self._dpop_nonce_header(endpoint, answer_headers))
            answer_headers.append(("Content-Length", str(len(body))))
            start_response(f"{reply.status} {_REASONS.get(reply.status, 'Status')}",
                           answer_headers)
            return [body]
        raise AssertionError("unreachable: every endpoint answers with a _Reply")

    def _route(self, path: str) -> tuple[ProviderSite | None, str]:
        if "/.well-known/" in path:
            return SITES["rfc6749"], "metadata"
        with self._lock:
            presets = list(self._presets.values())
        for preset in presets:
            if path == preset.token_path:
                return preset, "token"
            if path == preset.resource_path:
                return preset, "resource"
        if path in self._token_paths:
            return SITES["rfc6749"], "token"
        for site in SITES.values():
            if path == site.token_path:
                return site, "token"
            if path == site.resource_path:
                return site, "resource"
        if self._guard_every_path:
            return SITES["rfc6749"], "resource"
        return None, "other"

    def _scripted(self, endpoint: str, site: ProviderSite) -> None:
        """Answer with the next scripted reply for *endpoint*, if there is one."""
        with self._lock:
            if not self._scripts[endpoint]:
                return
            reply = self._scripts[endpoint].pop(0)
            if isinstance(reply.json, dict):
                data = reply.json.get("data", reply.json)
                token = data.get("access_token") if isinstance(data, dict) else None
                if isinstance(token, str):
                    self._tokens[token] = _Issued(site.name, "scripted", math.inf)
        if reply.fail is not None:
            raise _DropConnection(reply.fail)
        headers = list(reply.headers.items())
        if reply.json is not None:
            raise _Reply(reply.status, reply.json, headers)
        raise _Reply(reply.status, None, headers, raw=reply.body)

    # -- authorization server metadata (RFC 8414, OpenID Connect Discovery) -------------------

    def metadata_document(self, issuer: str, base: str) -> dict[str, Any]:
        """The metadata of *issuer* (the server at *base*, or a tenant below it): the
        ``rfc6749`` site's token endpoint and what it takes, with :attr:`metadata_fields`."""
        document: dict[str, Any] = {
            "issuer": issuer,
            "token_endpoint": base + SITES["rfc6749"].token_path,
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic", "client_secret_post", "client_secret_jwt",
                "private_key_jwt",
            ],
            "token_endpoint_auth_signing_alg_values_supported": [*_HMAC_ALGS, *_KEY_ALGS],
            "dpop_signing_alg_values_supported": list(_dpop.DPOP_ALGS),
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": [],
        }
        for name, value in self.metadata_fields.items():
            if value is None:
                document.pop(name, None)
            else:
                document[name] = value
        return document

    def _metadata(self, site: ProviderSite, environ: dict[str, Any]) -> None:
        """Serve ``/.well-known/oauth-authorization-server[/<tenant>]`` (RFC 8414 §3.1) and
        ``[/<tenant>]/.well-known/openid-configuration`` (OpenID Connect Discovery §4)."""
        with self._lock:
            gate = self._gate
        if gate is not None and not gate._pass():
            raise _Reply(503, {"error": "temporarily_unavailable"})
        self._scripted("metadata", site)
        path = environ.get("PATH_INFO", "")
        oauth = "/.well-known/oauth-authorization-server"
        openid = "/.well-known/openid-configuration"
        if path.startswith(oauth):
            tenant = path[len(oauth):]
        elif path.endswith(openid):
            tenant = path[: -len(openid)]
        else:
            raise _Reply(404, {"error": "not_found"})
        if environ.get("REQUEST_METHOD", "GET") != "GET":
            raise _Reply(405, {"error": "method_not_allowed"}, [("Allow", "GET")])
        base = application_uri(environ).rstrip("/")
        raise _Reply(200, self.metadata_document(base + tenant.rstrip("/"), base))

    def _site(self, provider: str) -> ProviderSite:
        with self._lock:
            preset = self._presets.get(provider)
        if preset is not None:
            return preset
        if provider in PRESET_SITES:
            raise ValueError(
                f"preset {provider!r} is not served: emulator.add_preset({provider!r})"
            )
        try:
            return SITES[provider]
        except KeyError:
            raise ValueError(f"unknown provider {provider!r}; known: "
                             f"{', '.join([*SITES, *PRESET_SITES])}") from None

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
            gate = self._gate
        if gate is not None and not gate._pass():
            raise _Reply(503, {"error": "temporarily_unavailable",
                               "error_description": "held at a gate that was never opened"})
        if self.latency > 0:
            time.sleep(self.latency)  # the network round trip it stands for
        self._scripted("token", site)
        fault = self._take_fault()
        if fault is not None:
            if fault.kind == "drop":
                raise _DropConnection("drop")
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
        rules = _PRESET_RULES.get(site.name)
        if site.name == "fincalc":
            fields = self._fincalc_fields(content_type, raw)
        else:
            fields = self._form_fields(site, content_type, raw, rules)
        # A DPoP proof is checked before the client is (a nonce refusal spends no assertion).
        jkt = self._dpop_proof(environ, "token") if "HTTP_DPOP" in environ else None
        if rules is not None:
            client = self._authenticate_preset(site, rules, fields, environ)
        else:
            client = self._authenticate(site, fields, environ)
        if client.dpop_bound and jkt is None:
            raise self._dpop_refused(_dpop.DPoPRefusal("a DPoP proof is required", "missing"),
                                     "token")
        lifetime = self._lifetimes.get(site.name, site.lifetime)
        with self._lock:
            token = (secrets.token_urlsafe(32) if self._token_prefix is None
                     else f"{self._token_prefix}{next(self._serial)}")
            self._tokens[token] = _Issued(site.name, str(client.client_id),
                                          self._clock() + lifetime, jkt,
                                          _tls.thumbprint(environ))
        answer: dict[str, Any] = {"access_token": token}
        if site.name == "fincalc":
            data = {"token_type": "Bearer", "expires_in": _seconds(lifetime),
                    "access_token": token}
            answer = {"success": True, "data": data}
        elif rules is not None:
            answer["token_type"] = "Bearer"  # noqa: S105 - a type, not a token
            if site.says_expires_in:
                answer["expires_in"] = _seconds(lifetime)
            answer.update(rules.answer_fields)
            if "issued_at" in answer:
                answer["issued_at"] = str(int(time.time() * 1000))
            if "instance_url" in answer:
                # Salesforce's My Domain: the org's instance, where the token was asked for.
                answer["instance_url"] = application_uri(environ).rstrip("/")
        elif site.says_expires_in:
            answer["expires_in"] = _seconds(lifetime)
            answer["token_type"] = "bearer"  # noqa: S105 - a type, not a token
        if jkt is not None:  # RFC 9449 §5: a DPoP-bound token
            answer.get("data", answer)["token_type"] = "DPoP"  # noqa: S105
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
        self, site: ProviderSite, content_type: str, raw: bytes, rules: _PresetRules | None = None
    ) -> dict[str, Any]:
        if content_type != FORM:
            refusal = _Refusal(400, "invalid_request", f"Content-Type must be {FORM}")
            raise _refuse(rules, refusal) if rules is not None else _Reply(
                400, {"error": refusal.error, "error_description": refusal.description})
        pairs = parse_qsl(raw.decode("utf-8", "replace"))
        assertions = [value for name, value in pairs if name == "client_assertion"]
        if assertions:
            with self._lock:
                self._client_assertions.extend(assertions)
        if site.name == "rfc6749":
            # RFC 6749 §3.2: parameters MUST NOT be included more than once; but RFC 8707 §2
            # lets a client name several resources (resource=a&resource=b).
            repeated = sorted(name for name, count in Counter(n for n, _ in pairs).items()
                              if count > 1 and name != "resource")
            if repeated:
                raise _Reply(400, {"error": "invalid_request", "error_description":
                                   f"repeated parameter: {', '.join(repeated)}"})
        return dict(pairs)

    def _authenticate(
        self, site: ProviderSite, fields: Mapping[str, Any], environ: dict[str, Any]
    ) -> EmulatedClient:
        if fields.get("grant_type") != "client_credentials":
            if site.name == "fincalc":
                raise self._fincalc_failure("The grant_type must be client_credentials.")
            raise _Reply(400, {"error": "unsupported_grant_type"})
        if site.name == "rfc6749":
            return self._authenticate_rfc6749(site, fields, environ)
        # The seed providers: client_secret_post only (FinCalc's also in a JSON body).
        with self._lock:
            client = self._clients.get((site.name, str(fields.get("client_id"))))
        good = client is not None and secrets.compare_digest(
            str(fields.get("client_secret", "")).encode(), (client.client_secret or "").encode()
        )
        if client is not None and good and site.name == "fincalc":
            good = fields.get("email_address") == client.extra.get("email_address")
        if client is None or not good:
            if site.name == "fincalc":
                raise self._fincalc_failure("The client credentials are invalid.")
            raise _Reply(401, {"error": "invalid_client",
                               "error_description": "Client authentication failed."})
        return client

    def _authenticate_preset(
        self, site: ProviderSite, rules: _PresetRules, fields: Mapping[str, Any],
        environ: dict[str, Any],
    ) -> EmulatedClient:
        """A preset's token request checked as its identity provider does (:data:`_PRESET_RULES`):
        the grant, the client authentication it takes, then its required fields and scopes."""
        if fields.get("grant_type") != "client_credentials":
            raise _refuse(rules, _Refusal(400, "unsupported_grant_type",
                                          "grant_type must be client_credentials"))
        try:
            basic = _basic_credentials(environ)
        except _Reply as malformed:
            raise _refuse(rules, rules.bad_client) from malformed
        used = [name for name, present in (
            ("client_secret_basic", basic is not None),
            ("client_secret_post", "client_secret" in fields),
            ("client_assertion", "client_assertion" in fields
             or "client_assertion_type" in fields)) if present]
        if len(used) != 1 or used[0] not in rules.auth_methods:
            raise _refuse(rules, rules.bad_client)
        try:
            client = self._authenticate_rfc6749(site, fields, environ)
        except _Reply as refused:
            raise _refuse(rules, rules.bad_client) from refused
        for name, refusal in rules.required.items():
            if not fields.get(name):
                raise _refuse(rules, refusal, name)
        for name, value in client.extra.items():
            if name in rules.required and fields.get(name) != value:
                raise _refuse(rules, rules.unknown_value, str(fields.get(name)))
        scopes = str(fields.get("scope", "")).split()
        path = environ.get("PATH_INFO", "")
        if rules.every_scope is not None and re.fullmatch(rules.scope_paths, path):
            for scope in scopes:
                if not re.fullmatch(rules.every_scope, scope):
                    raise _refuse(rules, rules.scope_refusal, scope)
        if rules.some_scope is not None and not any(
            re.fullmatch(rules.some_scope, scope) for scope in scopes
        ):
            raise _refuse(rules, rules.scope_refusal, " ".join(scopes))
        return client

    def _authenticate_rfc6749(
        self, site: ProviderSite, fields: Mapping[str, Any], environ: dict[str, Any]
    ) -> EmulatedClient:
        basic = _basic_credentials(environ)
        uses_assertion = "client_assertion" in fields or "client_assertion_type" in fields
        methods = [name for name, used in (("client_secret_basic", basic is not None),
                                           ("client_secret_post", "client_secret" in fields),
                                           ("a client assertion", uses_assertion)) if used]
        if len(methods) > 1:
            # RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in
            # each request."
            raise _Reply(400, {"error": "invalid_request", "error_description":
                               f"more than one client authentication method: {', '.join(methods)}"})
        if basic is not None:
            client_id, secret = basic
            if fields.get("client_id", client_id) != client_id:
                raise _Reply(400, {"error": "invalid_request", "error_description":
                                   "client_id differs from the Basic credentials' client id"})
            return self._check_secret(site, client_id, secret, _BASIC_CHALLENGE)
        if uses_assertion:
            return self._check_assertion(site, fields, environ)
        if not methods:
            with self._lock:
                client = self._clients.get((site.name, str(fields.get("client_id"))))
            if client is not None and _tls.registered(client):
                # RFC 8705 §2: the TLS client certificate authenticates the client.
                reason = _tls.refusal(client, environ)
                if reason is not None:
                    raise _Reply(401, {"error": "invalid_client", "error_description": reason})
                return client
        return self._check_secret(site, fields.get("client_id"), fields.get("client_secret"))

    def _check_secret(
        self, site: ProviderSite, client_id: object, secret: object,
        headers: Iterable[tuple[str, str]] = (),
    ) -> EmulatedClient:
        with self._lock:
            client = self._clients.get((site.name, str(client_id)))
        expected = client.client_secret if client is not None else None
        if (client is None or client_id is None or expected is None or not isinstance(secret, str)
                or not secrets.compare_digest(secret.encode(), expected.encode())):
            raise _Reply(401, {"error": "invalid_client",
                               "error_description": "Client authentication failed."}, headers)
        return client

    def _check_assertion(
        self, site: ProviderSite, fields: Mapping[str, Any], environ: dict[str, Any]
    ) -> EmulatedClient:
        """RFC 7523 §2.2 and §3: client_secret_jwt and private_key_jwt."""
        if fields.get("client_assertion_type") != ASSERTION_TYPE:
            raise _assertion_failure(f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = fields.get("client_assertion")
        if not assertion:
            raise _Reply(400, {"error": "invalid_request",
                               "error_description": "client_assertion is missing"})
        # The client is named by the (not yet verified) sub, as in Authlib's
        # JWTBearerClientAssertion: its keys are needed to verify the signature.
        try:
            unverified = jws.extract_compact(assertion.encode())
            header = unverified.headers()
            payload = json.loads(unverified.payload)
        except (JoseError, ValueError):
            raise _assertion_failure("client assertion is not a signed JWT") from None
        subject = payload.get("sub") if isinstance(payload, dict) else None
        if not isinstance(subject, str) or not subject:
            raise _assertion_failure("client assertion has no sub")
        if fields.get("client_id", subject) != subject:
            raise _assertion_failure("client_id does not match the client assertion's sub")
        with self._lock:
            client = self._clients.get((site.name, subject))
            key_set = self._key_sets.get((site.name, subject))
        if client is None:
            raise _assertion_failure("client assertion sub is not a registered client")
        claims = _verify_signature(assertion, header, client, key_set)
        self._check_claims(claims, subject, environ)
        return client

    def _check_claims(
        self, claims: Mapping[str, Any], client_id: str, environ: dict[str, Any]
    ) -> None:
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise _assertion_failure("client assertion iss and sub must both be the client id")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        accepted = self._audiences(environ)
        if not isinstance(audiences, list) or not any(
            isinstance(aud, str) and aud in accepted for aud in audiences
        ):
            raise _assertion_failure(
                "client assertion aud names neither this token endpoint nor the issuer"
            )
        now = time.time()
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if not _is_time(exp):
            raise _assertion_failure("client assertion exp is missing or not a number")
        if exp <= now:
            raise _assertion_failure("client assertion has expired")
        if not _is_time(iat):
            raise _assertion_failure("client assertion iat is missing or not a number")
        if iat > now + _CLOCK_SKEW:
            raise _assertion_failure("client assertion iat is in the future")
        if exp - iat > self.max_assertion_lifetime:
            raise _assertion_failure(f"client assertion lifetime (exp - iat) is over "
                                     f"{_seconds(self.max_assertion_lifetime)} s")
        if nbf is not None and (not _is_time(nbf) or nbf > now + _CLOCK_SKEW):
            raise _assertion_failure("client assertion is not valid yet (nbf)")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _assertion_failure("client assertion jti is missing")
        # RFC 7523 §3: the server may keep jtis to refuse replays; checked last, so that only an
        # otherwise valid assertion uses up its jti.
        with self._lock:
            self._seen_jtis = {seen: until for seen, until in self._seen_jtis.items()
                               if until > now}
            if (client_id, jti) in self._seen_jtis:
                raise _assertion_failure("client assertion jti was already used")
            self._seen_jtis[(client_id, jti)] = exp

    def _audiences(self, environ: dict[str, Any]) -> set[str]:
        """The token URL as the client addressed it and the issuer there (its origin: in
        process, the emulator stands for whatever server the URL names), and when serving,
        both as the emulator names them."""
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        accepted = {request_uri(environ, include_query=False),
                    application_uri(environ).rstrip("/")}
        if self._server is not None:
            accepted.update((self.issuer, self.url + path))
        return accepted

    def _resource(self, site: ProviderSite, environ: dict[str, Any]) -> None:
        with self._lock:
            self.resource_requests[site.name] += 1
        self._scripted("resource", site)
        header = environ.get("HTTP_AUTHORIZATION", "")
        challenge = [("WWW-Authenticate", 'Bearer error="invalid_token"')]
        scheme, _, presented = header.partition(" ")
        if scheme.lower() == "dpop":
            bound = self._dpop_resource(site, environ, presented.strip())
            raise _Reply(200, {"provider": site.name, "client_id": bound.client_id, "ok": True})
        if not header.startswith("Bearer "):
            raise _Reply(401, {"error": "invalid_token"}, [("WWW-Authenticate", "Bearer")])
        issued = self._valid_token(site, header[7:])
        if issued is None:
            raise _Reply(401, {"error": "invalid_token"}, challenge)
        if issued.jkt is not None:
            raise self._dpop_refused(_dpop.DPoPRefusal(
                "this token is DPoP-bound: send it with the DPoP scheme and a proof", "bearer",
                error="invalid_token"), "resource")
        if issued.x5t is not None and issued.x5t != _tls.thumbprint(environ):
            # RFC 8705 §3: a bound token only with the certificate it is bound to.
            raise _Reply(401, {"error": "invalid_token", "error_description":
                               "the token is bound to another client certificate"}, challenge)
        answer: dict[str, Any] = {"provider": site.name, "client_id": issued.client_id,
                                  "ok": True}
        if issued.x5t is not None:
            answer["cnf"] = {"x5t#S256": issued.x5t}  # the binding (RFC 8705 §3.1)
        raise _Reply(200, answer)

    def _valid_token(self, site: ProviderSite, token: str) -> _Issued | None:
        """The token issued as *token* for *site*, if it has not expired nor been revoked."""
        with self._lock:
            issued = self._tokens.get(token)
            if issued is None or issued.provider != site.name:
                return None
            return issued if self._clock() < issued.expires_at else None

    # -- DPoP (RFC 9449) --------------------------------------------------------------------

    def _dpop_resource(self, site: ProviderSite, environ: dict[str, Any], token: str) -> _Issued:
        """``Authorization: DPoP <token>``: a DPoP-bound token with a proof of its key."""
        issued = self._valid_token(site, token)
        if issued is None:
            raise self._dpop_refused(_dpop.DPoPRefusal(
                "the access token is unknown, expired or revoked", "token",
                error="invalid_token"), "resource")
        if issued.jkt is None:
            raise self._dpop_refused(_dpop.DPoPRefusal(
                "the access token is not DPoP-bound: send it with the Bearer scheme", "unbound",
                error="invalid_token"), "resource")
        jkt = self._dpop_proof(environ, "resource", token)
        if jkt != issued.jkt:
            raise self._dpop_refused(_dpop.DPoPRefusal(
                "the proof's key is not the key the access token is bound to", "jkt"),
                "resource")
        return issued

    def _dpop_proof(
        self, environ: dict[str, Any], endpoint: str, access_token: str | None = None
    ) -> str:
        """The thumbprint of the key of the request's valid DPoP proof, its jti now spent."""
        value = environ.get("HTTP_DPOP")
        with self._lock:
            nonce = self._dpop_nonces.get(endpoint)
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        urls = {request_uri(environ, include_query=False)}
        if self._server is not None:
            urls.add(self.url + path)
        now = time.time()
        try:
            proof = _dpop.verify_proof(
                [] if value is None else [str(value)],
                method=environ.get("REQUEST_METHOD", "GET"), urls=urls, now=now, nonce=nonce,
                access_token=access_token,
            )
            self._dpop_jtis.remember(proof.jti, now)
        except _dpop.DPoPRefusal as refusal:
            raise self._dpop_refused(refusal, endpoint) from None
        return proof.jkt

    def _dpop_refused(self, refusal: _dpop.DPoPRefusal, endpoint: str) -> _Reply:
        """The answer refusing a request for its DPoP proof: 400 at a token endpoint, 401
        with a ``DPoP`` challenge at a resource (the nonce header is added when answering)."""
        with self._lock:
            self.dpop_refusals[refusal.error] += 1
            self.dpop_refusals[refusal.reason] += 1
        body = {"error": refusal.error, "error_description": refusal.description}
        if endpoint == "token":
            return _Reply(400, body)
        quoted = refusal.description.replace("\\", "\\\\").replace('"', '\\"')
        challenge = f'DPoP error="{refusal.error}", error_description="{quoted}"'
        return _Reply(401, body, [("WWW-Authenticate", challenge)])

    def _dpop_nonce_header(
        self, endpoint: str, headers: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """``DPoP-Nonce`` for an answer of an endpoint demanding one (unless it has one)."""
        with self._lock:
            nonce = self._dpop_nonces.get(endpoint)
        if nonce is None or any(name.lower() == "dpop-nonce" for name, _ in headers):
            return []
        return [("DPoP-Nonce", nonce)]


def _seconds(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _peer(environ: Mapping[str, Any]) -> tuple[str, int] | None:
    """The client's address and port, served over loopback (``None`` in process)."""
    if "REMOTE_ADDR" not in environ or "REMOTE_PORT" not in environ:
        return None
    return str(environ["REMOTE_ADDR"]), int(environ["REMOTE_PORT"])


_BASIC_CHALLENGE = (("WWW-Authenticate", 'Basic realm="oauth-cc-emulator"'),)


def _basic_credentials(environ: Mapping[str, Any]) -> tuple[str, str] | None:
    """The client id and secret of an ``Authorization: Basic`` header, or ``None``.

    RFC 6749 §2.3.1: both are form-encoded (``application/x-www-form-urlencoded``) before
    base64, so ``+`` decodes to a space and ``%2B`` to ``+``.
    """
    scheme, _, value = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError both are
        decoded = ""
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise _Reply(401, {"error": "invalid_client", "error_description":
                           "malformed Basic credentials"}, _BASIC_CHALLENGE)
    return unquote_plus(client_id), unquote_plus(secret)


def _refuse(rules: _PresetRules, refusal: _Refusal, subject: str = "") -> _Reply:
    """*refusal* in the shape of the preset's answers (:attr:`_PresetRules.error_shape`)."""
    description = refusal.description.format(subject)
    if rules.error_shape == "pingone":
        # PingOne's platform shape: an id, a code in capitals, a message.
        code = refusal.error if refusal.error.isupper() else "INVALID_REQUEST"
        return _Reply(refusal.status, {"id": secrets.token_hex(16), "code": code,
                                       "message": description or refusal.error})
    body: dict[str, Any] = {"error": refusal.error}
    if rules.error_shape == "bare":
        return _Reply(refusal.status, body)
    body["error_description"] = description
    if rules.error_shape == "entra":
        trace, correlation = secrets.token_hex(16), secrets.token_hex(16)
        stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        number = re.match(r"AADSTS(\d+)", description)
        body["error_description"] = (f"{description} Trace ID: {trace} Correlation ID: "
                                     f"{correlation} Timestamp: {stamp}")
        body.update(error_codes=[int(number.group(1))] if number else [], timestamp=stamp,
                    trace_id=trace, correlation_id=correlation)
    return _Reply(refusal.status, body)


def _assertion_failure(description: str) -> _Reply:
    # RFC 7521 §4.2.1: an invalid client assertion is invalid_client. The description never
    # quotes the assertion, a secret or a key.
    return _Reply(401, {"error": "invalid_client", "error_description": description})


def _is_time(value: object) -> TypeGuard[float]:
    """A JWT NumericDate: a finite number (JSON also gives NaN and Infinity), not a bool."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _public_key_set(jwks: Mapping[str, Any]) -> KeySet:
    """*jwks* as a joserfc key set; a ValueError unless it holds public keys only."""
    try:
        key_set = KeySet.import_key_set(cast(KeySetSerialization, dict(jwks)))
    except (JoseError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"jwks is not a JWK Set of keys joserfc knows: {error}") from None
    if any(key.is_private for key in key_set):
        raise ValueError("jwks must hold public keys only, as the client publishes them")
    return key_set


def _verify_signature(
    assertion: str, header: Mapping[str, Any], client: EmulatedClient, key_set: KeySet | None
) -> Mapping[str, Any]:
    """The claims of *assertion* once joserfc verified its signature with *client*'s keys."""
    alg = header.get("alg")
    algorithms: tuple[str, ...]
    candidates: list[KeyFlexible]
    if alg in _HMAC_ALGS:
        # client_secret_jwt: only a client with a secret, and never with a public key.
        if client.client_secret is None:
            raise _assertion_failure("an HMAC client assertion needs a client secret; "
                                     "this client has none")
        if len(client.client_secret.encode()) < 14:
            raise _assertion_failure("the client secret is too short for an HMAC client "
                                     "assertion (under 112 bits)")
        algorithms, candidates = _HMAC_ALGS, [OctKey.import_key(client.client_secret)]
    elif alg in _KEY_ALGS:
        if key_set is None:
            raise _assertion_failure("a signed client assertion needs the client's jwks; "
                                     "this client has none")
        algorithms = _KEY_ALGS
        if "kid" in header:
            candidates = [key_set]  # joserfc picks the key by kid (and alg, use)
        else:
            # No kid: any key of the alg's type, meant for signing with this alg.
            types = KeySet.algorithm_keys.get(str(alg), [])
            candidates = [key for key in key_set if key.key_type in types
                          and key.get("use") in (None, "sig") and key.get("alg") in (None, alg)]
    else:
        raise _assertion_failure("client assertion alg is not accepted (HS*, RS*, PS*, ES*, "
                                 "EdDSA, Ed25519, Ed448)")
    for key in candidates:
        try:
            return jwt.decode(assertion, key, algorithms=list(algorithms)).claims
        except BadSignatureError:
            continue
        except InvalidKeyIdError:
            raise _assertion_failure("no key of the client's jwks has this kid") from None
        except (JoseError, ValueError) as error:
            why = error.error if isinstance(error, JoseError) else "malformed"
            raise _assertion_failure(f"client assertion refused: {why}") from None
    raise _assertion_failure("client assertion signature is invalid")


# -- the server ---------------------------------------------------------------------------------


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops connections from a few dozen clients at once,
    # and the kernel then retries them a second later.
    request_queue_size = 256

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def close_connections(self) -> None:
        """Shut down the connections still open: kept alive, a stopped server answers none."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _Handler(WSGIRequestHandler):
    """wsgiref's handler, quiet, able to drop a connection unanswered, and telling the
    application the client's port. One request per connection (HTTP/1.0)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def get_environ(self) -> dict[str, str]:
        environ = super().get_environ()
        environ["REMOTE_PORT"] = str(self.client_address[1])
        return environ

    def handle(self) -> None:
        # BaseHTTPRequestHandler's loop (WSGIRequestHandler answers one request and returns):
        # one request, or as many as the connection is kept open for.
        BaseHTTPRequestHandler.handle(self)

    def handle_one_request(self) -> None:
        # As WSGIRequestHandler.handle, with a ServerHandler that knows this handler.
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:  # the client closed the connection
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        rfile = self.rfile
        if "Content-Length" not in self.headers and "Transfer-Encoding" in self.headers:
            # wsgiref reads no chunked body: read here (so that the client may send all of it
            # before the answer, never reset by a close with its body unread) and given to the
            # app with its length. What is left of a malformed one must not be taken for the
            # next request.
            body = None
            if self.headers["Transfer-Encoding"].strip().lower() == "chunked":
                body = _read_chunked(self.rfile)
            if body is None:
                self.close_connection = True
            else:
                rfile = io.BytesIO(body)
                del self.headers["Transfer-Encoding"]
                self.headers["Content-Length"] = str(len(body))
        handler = _ServerHandler(
            rfile, self.wfile, self.get_stderr(), self.get_environ(),  # type: ignore[arg-type]
            multithread=True,
        )
        handler.http_version = self.protocol_version.partition("/")[2]
        handler.request_handler = self
        handler.run(self.server.get_app())  # type: ignore[attr-defined]


#: The largest chunked request body the emulator reads.
_MAX_CHUNKED = 16 * 1024 * 1024


def _read_chunked(rfile: Any) -> bytes | None:
    """A chunked request body (RFC 9112 §7.1), its trailers skipped; ``None`` when it is
    malformed or larger than :data:`_MAX_CHUNKED`."""
    parts: list[bytes] = []
    size = 0
    while True:
        line = rfile.readline(1026)
        digits = line.split(b";", 1)[0].strip()
        try:
            length = int(digits, 16)
        except ValueError:
            return None
        if length == 0:
            break
        size += length
        if length < 0 or size > _MAX_CHUNKED:
            return None
        parts.append(rfile.read(length))
        if rfile.readline(3) not in (b"\r\n", b"\n"):
            return None
    while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
        pass  # trailer fields
    return b"".join(parts)


class _KeepAliveHandler(_Handler):
    """:class:`_Handler` keeping HTTP/1.1 connections open for further requests."""

    protocol_version = "HTTP/1.1"


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
