"""A real OAuth 2.0 authorization server, built from Authlib's server-side classes, on loopback.

For interoperability tests: the token endpoint is Authlib's framework-agnostic
``AuthorizationServer`` with its ``ClientCredentialsGrant``; client authentication is Authlib's
``client_secret_basic`` and ``client_secret_post`` and its RFC 7523 ``JWTBearerClientAssertion``
(``client_secret_jwt``, ``private_key_jwt``); tokens come from Authlib's
``BearerTokenGenerator``, and the protected resource checks them with Authlib's
``ResourceProtector`` and ``BearerTokenValidator``. What is written here is only the glue a web
framework integration would provide (requests in, responses out, storage), plus a record of
every token request for the tests to inspect.

::

    with AuthlibServer() as server:
        server.register("svc", method="private_key_jwt", jwks=public_jwks)
        ...  # the client under test posts to server.token_url, then gets server.resource_url
        assert [r.status for r in server.token_requests] == [200]

Endpoints: ``POST /token``, and ``GET``/``POST /resource`` answering 200
``{"ok": true, "client_id": ...}`` for a live token of this server, else 401 with
``WWW-Authenticate: Bearer error="invalid_token"``.

Differences from a production server, on purpose: ``validate_jti`` remembers every
``(client, jti)`` pair for the server's life; tokens are kept in memory; ``/token`` answers
only ``client_credentials``.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any, ClassVar
from urllib.parse import parse_qsl
from wsgiref.headers import Headers
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    ResourceProtector,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, KeySet, OctKey, OKPKey, RSAKey

__all__ = [
    "SUPPORTED_METHODS",
    "AuthlibServer",
    "Client",
    "ResourceRequestRecord",
    "TokenRequestRecord",
]

#: The token endpoint client authentication methods this server accepts, in the order
#: Authlib tries them.
SUPPORTED_METHODS = (
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
)
_SECRET_METHODS = frozenset(SUPPORTED_METHODS[:3])
#: RFC 7518 §3.2: an HMAC key at least as long as the hash output (HS256: 32 bytes). Shorter
#: ones would also make joserfc warn (below 14 bytes), an error under pytest.
_MIN_JWT_SECRET_BYTES = 32


# -- models -----------------------------------------------------------------------------------


class Client(ClientMixin):  # type: ignore[misc]  # authlib is untyped
    """A registered client: one token endpoint auth method, and its credential."""

    def __init__(
        self,
        client_id: str,
        method: str,
        secret: str | None,
        key: Key | KeySet | None,
        scopes: Collection[str] | None,
    ) -> None:
        self.client_id = client_id
        self.token_endpoint_auth_method = method
        self.client_secret = secret
        #: client_secret_jwt: the secret as an OctKey; private_key_jwt: the public JWK Set.
        self.key = key
        self.scopes = None if scopes is None else frozenset(scopes)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        requested = scope.split()
        if self.scopes is None:
            return " ".join(requested)
        return " ".join(s for s in requested if s in self.scopes)

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret is None or not isinstance(client_secret, str):
            return False
        # Bytes: compare_digest refuses str with non-ASCII characters.
        return hmac.compare_digest(
            self.client_secret.encode("utf-8"), client_secret.encode("utf-8")
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method == self.token_endpoint_auth_method
        return False

    def __repr__(self) -> str:  # never the secret
        return f"Client({self.client_id!r}, {self.token_endpoint_auth_method!r})"


class IssuedToken(TokenMixin):  # type: ignore[misc]
    def __init__(self, access_token: str, client: Client, scope: str, expires_in: int) -> None:
        self.access_token = access_token
        self.client = client
        self.scope = scope
        self.expires_in = expires_in
        self.issued_at = time.monotonic()
        self.revoked = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return bool(self.expires_in) and time.monotonic() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> None:
        return None

    def get_client(self) -> Client:
        return self.client


# -- the records ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TokenRequestRecord:
    """One request the token endpoint received, and what it answered."""

    method: str
    path: str
    #: The form fields (the last value of a repeated field; ``duplicates`` lists those).
    form: dict[str, str]
    #: Request headers, lower-case names.
    headers: dict[str, str]
    #: HTTP status answered.
    status: int
    #: Authlib's error code when refused (``"invalid_client"``...), else ``None``.
    error: str | None = None
    description: str | None = None
    #: The client Authlib authenticated, and with which method (``None`` if it did not).
    client_id: str | None = None
    auth_method: str | None = None
    duplicates: tuple[str, ...] = ()
    #: The traceback, for a 500.
    exception: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == 200


@dataclasses.dataclass(frozen=True)
class ResourceRequestRecord:
    method: str
    status: int
    client_id: str | None
    authorization: str | None


# -- Authlib's framework-integration points ---------------------------------------------------


class _FormPayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data = dict(pairs)
        self._datalist: dict[str, list[str]] = {}
        for name, value in pairs:
            self._datalist.setdefault(name, []).append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class _WsgiOAuth2Request(OAuth2Request):  # type: ignore[misc]
    """What a framework integration gives Authlib: method, URI, headers (case-insensitive
    ``get``, which Authlib's Basic and Bearer parsing rely on), the form and the payload."""

    def __init__(self, method: str, uri: str, headers: Headers, pairs: list[tuple[str, str]]):
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = _FormPayload(pairs)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


class _ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(SUPPORTED_METHODS)


class _ClientAssertion(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 client authentication for one method, with the server's audiences and a
    one-time ``jti`` check."""

    def __init__(self, owner: AuthlibServer) -> None:
        super().__init__()  # validate_jti=True, leeway=60
        self.owner = owner

    def __call__(self, query_client: Callable[[str], Client | None], request: Any) -> Any:
        # Authlib verifies an assertion with the first registered JWT method before it checks
        # that the client uses that method: for a client of the other method, the key would be
        # the wrong one and the refusal final. Leave such a client to the other method.
        assertion = request.form.get("client_assertion")
        if request.form.get("client_assertion_type") == self.CLIENT_ASSERTION_TYPE and assertion:
            _, claims = self.extract_assertion(assertion)
            client = query_client(claims["sub"]) if isinstance(claims.get("sub"), str) else None
            if client is not None and client.token_endpoint_auth_method != self.CLIENT_AUTH_METHOD:
                return None
        return super().__call__(query_client, request)

    def get_audiences(self) -> list[str]:
        return [self.owner.token_url, self.owner.url]

    def validate_jti(self, claims: Mapping[str, Any], jti: str) -> bool:
        return self.owner._use_jti(claims["sub"], jti)

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        algorithms = self.owner.algorithms
        if algorithms is None:  # Authlib's own: joserfc's recommended algorithms only
            return super().process_assertion_claims(assertion, resolve_key)
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(algorithms))
        except JoseError as e:
            raise InvalidClientError(description=e.description) from e
        self.verify_claims(token.claims)
        return token.claims


class _ClientSecretJWT(_ClientAssertion):
    CLIENT_AUTH_METHOD = "client_secret_jwt"

    def resolve_client_public_key(self, client: Client) -> Key | KeySet:
        assert isinstance(client.key, OctKey)
        return client.key


class _PrivateKeyJWT(_ClientAssertion):
    CLIENT_AUTH_METHOD = "private_key_jwt"

    def resolve_client_public_key(self, client: Client) -> Key | KeySet:
        assert isinstance(client.key, KeySet)
        return client.key


class _AuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, owner: AuthlibServer) -> None:
        super().__init__()
        self.owner = owner
        self.register_grant(_ClientCredentialsGrant)
        self.register_client_auth_method("client_secret_jwt", _ClientSecretJWT(owner))
        self.register_client_auth_method("private_key_jwt", _PrivateKeyJWT(owner))
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: secrets.token_urlsafe(32),
                expires_generator=lambda client, grant_type: owner.expires_in,
            ),
        )

    def query_client(self, client_id: str) -> Client | None:
        return self.owner._clients.get(client_id)

    def save_token(self, token: Mapping[str, Any], request: OAuth2Request) -> None:
        issued = IssuedToken(
            token["access_token"],
            request.client,
            token.get("scope", ""),
            int(token.get("expires_in") or 0),
        )
        with self.owner._lock:
            self.owner._tokens[issued.access_token] = issued

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        raise TypeError(f"not a request of this server: {type(request).__name__}")

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def handle_response(
        self, status: int, body: Any, headers: Iterable[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, list(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


class _BearerValidator(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, owner: AuthlibServer) -> None:
        super().__init__()
        self.owner = owner

    def authenticate_token(self, token_string: str) -> IssuedToken | None:
        with self.owner._lock:
            return self.owner._tokens.get(token_string)


# -- the HTTP server --------------------------------------------------------------------------


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


def _request_headers(environ: Mapping[str, Any]) -> list[tuple[str, str]]:
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").lower(), value))
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers.append((key.replace("_", "-").lower(), environ[key]))
    return headers


class AuthlibServer:
    """Authlib's authorization server and a protected resource, on 127.0.0.1, in a thread.

    :param expires_in: ``expires_in`` of the tokens issued (settable later; 0: none sent).
    :param algorithms: JWS algorithms accepted in client assertions; ``None`` (default) keeps
        Authlib's behaviour, which is joserfc's default: recommended ones only (HS256, RS256,
        ES256).
    """

    def __init__(self, *, expires_in: int = 3600, algorithms: Collection[str] | None = None):
        self.expires_in = expires_in
        self.algorithms = None if algorithms is None else tuple(algorithms)
        self._lock = threading.Lock()
        self._clients: dict[str, Client] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self._seen_jti: set[tuple[str, str]] = set()
        self._token_requests: list[TokenRequestRecord] = []
        self._resource_requests: list[ResourceRequestRecord] = []
        self._requests: list[tuple[str, str]] = []
        #: Tracebacks of exceptions raised while handling a request (each answered 500).
        self.errors: list[str] = []
        self._authorization_server = _AuthorizationServer(self)
        self._protector = ResourceProtector()
        self._protector.register_token_validator(_BearerValidator(self))
        self._httpd: _ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> AuthlibServer:
        if self._httpd is not None:
            raise RuntimeError("already started")
        httpd = make_server("127.0.0.1", 0, self._wsgi, _ThreadingWSGIServer, _QuietHandler)
        self._httpd = httpd
        self._port = httpd.server_port
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"authlib-server-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("the server thread did not stop")

    def __enter__(self) -> AuthlibServer:
        return self.start()

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.stop()
        if exc_type is None and self.errors:
            raise AssertionError("the server failed:\n" + "\n".join(self.errors))

    # -- addresses ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>`` (an accepted assertion audience too)."""
        if not self._port:
            raise RuntimeError("not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def resource_url(self) -> str:
        return f"{self.url}/resource"

    def metadata(self) -> AuthorizationServerMetadata:
        """Its RFC 8414 metadata (issuer: :attr:`url`), validated by Authlib, served at
        ``/.well-known/oauth-authorization-server``."""
        metadata = AuthorizationServerMetadata({
            "issuer": self.url,
            "token_endpoint": self.token_url,
            "token_endpoint_auth_methods_supported": list(SUPPORTED_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": ["HS256", "RS256", "ES256"],
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
        })
        metadata.validate()
        return metadata

    # -- clients and tokens ---------------------------------------------------------------------

    def register(
        self,
        client_id: str,
        *,
        method: str,
        secret: str | None = None,
        jwks: Mapping[str, Any] | Key | KeySet | None = None,
        scopes: Collection[str] | None = None,
    ) -> Client:
        """Register a client that authenticates with *method* only.

        *secret* for the ``client_secret_*`` methods (``client_secret_jwt``: at least 32 UTF-8
        bytes); *jwks* for ``private_key_jwt``: a JWK Set ``{"keys": [...]}``, one JWK, or a
        joserfc key or KeySet (public parts are what is kept). *scopes*: the scopes it may be
        granted (``None``: whatever it asks).
        """
        if method not in SUPPORTED_METHODS:
            raise ValueError(f"unsupported method {method!r}")
        key: Key | KeySet | None = None
        if method in _SECRET_METHODS:
            if not secret:
                raise ValueError(f"{method} needs a secret")
            if jwks is not None:
                raise ValueError(f"{method} takes no jwks")
            if method == "client_secret_jwt":
                if len(secret.encode("utf-8")) < _MIN_JWT_SECRET_BYTES:
                    raise ValueError("a client_secret_jwt secret needs at least 32 bytes")
                key = OctKey.import_key(secret.encode("utf-8"))
        else:
            if jwks is None or secret is not None:
                raise ValueError("private_key_jwt needs jwks and no secret")
            key = _public_key_set(jwks)
        client = Client(client_id, method, secret, key, scopes)
        with self._lock:
            self._clients[client_id] = client
        return client

    def revoke_all(self) -> None:
        """Revoke every token issued so far: the resource answers 401 to them."""
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    def _use_jti(self, client_id: str, jti: Any) -> bool:
        """One-time use: False if this client already used this jti."""
        if not isinstance(jti, str) or not jti:
            return False
        with self._lock:
            if (client_id, jti) in self._seen_jti:
                return False
            self._seen_jti.add((client_id, jti))
            return True

    # -- records --------------------------------------------------------------------------------

    @property
    def token_requests(self) -> list[TokenRequestRecord]:
        """Every token request received, in order (a copy)."""
        with self._lock:
            return list(self._token_requests)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Every request received, in order, as ``(method, path)`` (a copy): the metadata
        ones included."""
        with self._lock:
            return list(self._requests)

    @property
    def resource_requests(self) -> list[ResourceRequestRecord]:
        with self._lock:
            return list(self._resource_requests)

    @property
    def assertions(self) -> list[str]:
        """Every ``client_assertion`` received, in order."""
        return [r.form["client_assertion"] for r in self.token_requests
                if "client_assertion" in r.form]

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.token_requests if r.accepted)

    @property
    def refused(self) -> int:
        return sum(1 for r in self.token_requests if not r.accepted)

    def requests_of(self, client_id: str) -> list[TokenRequestRecord]:
        """The token requests that named *client_id* (authenticated or not): in the form, in
        the Basic header, or as an assertion's ``sub``."""
        return [r for r in self.token_requests if _claimed_client_id(r) == client_id]

    # -- the WSGI application -------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        pairs: list[tuple[str, str]] = []
        headers = _request_headers(environ)
        with self._lock:
            self._requests.append((method, path))
        try:
            if path == "/token":
                pairs, malformed = _read_form(environ)
                status, body, out_headers = self._token(method, headers, pairs, malformed)
            elif path == "/resource":
                status, body, out_headers = self._resource(method, headers)
            elif path == "/.well-known/oauth-authorization-server" and method == "GET":
                status, body, out_headers = 200, dict(self.metadata()), []
            else:
                status, body, out_headers = 404, {"error": "not_found"}, []
        except Exception:
            trace = traceback.format_exc()
            with self._lock:
                self.errors.append(trace)
                if path == "/token":
                    self._token_requests.append(TokenRequestRecord(
                        method, path, dict(pairs), dict(headers), 500, "server_error",
                        exception=trace,
                    ))
            status, body, out_headers = 500, {"error": "server_error"}, []
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        names = {name.lower() for name, _ in out_headers}
        if "content-type" not in names:
            out_headers.append(("Content-Type", "application/json"))
        out_headers.append(("Content-Length", str(len(payload))))
        start_response(f"{status} {_REASONS.get(status, 'Status')}", out_headers)
        return [payload]

    def _token(
        self,
        method: str,
        headers: list[tuple[str, str]],
        pairs: list[tuple[str, str]],
        malformed: OAuth2Error | None,
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        request_headers = Headers([(name.title(), value) for name, value in headers])
        counts: dict[str, int] = {}
        for name, _ in pairs:
            counts[name] = counts.get(name, 0) + 1
        duplicates = tuple(sorted(n for n, c in counts.items() if c > 1))
        if duplicates and malformed is None:
            # RFC 6749 §3.1, §3.2: request parameters MUST NOT be included more than once.
            malformed = InvalidRequestError("Repeated parameters: " + ", ".join(duplicates))

        request = _WsgiOAuth2Request(method, self.token_url, request_headers, pairs)
        server = self._authorization_server
        if malformed is not None:
            status, body, out = server.handle_error_response(request, malformed)
        else:
            status, body, out = server.create_token_response(request)
        client = request.client
        record = TokenRequestRecord(
            method=method,
            path="/token",
            form=dict(pairs),
            headers=dict(headers),
            status=status,
            error=body.get("error") if status != 200 and isinstance(body, dict) else None,
            description=body.get("error_description") if isinstance(body, dict) else None,
            client_id=client.client_id if client is not None and status == 200 else None,
            auth_method=request.auth_method if status == 200 else None,
            duplicates=duplicates,
        )
        with self._lock:
            self._token_requests.append(record)
        return status, body, out

    def _resource(
        self, method: str, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        request_headers = Headers([(name.title(), value) for name, value in headers])
        authorization = request_headers.get("Authorization")
        client_id = None
        if method not in ("GET", "POST", "HEAD"):
            status, body, out = 405, {"error": "method_not_allowed"}, [("Allow", "GET, POST")]
        else:
            try:
                token = self._protector.validate_request(None, _ResourceRequest(request_headers))
            except OAuth2Error as error:
                status = 401
                body = {"error": "invalid_token", "error_description": error.error}
                out = [("WWW-Authenticate", 'Bearer error="invalid_token"')]
            else:
                client_id = token.client.client_id
                status, body, out = 200, {"ok": True, "client_id": client_id}, []
        with self._lock:
            self._resource_requests.append(
                ResourceRequestRecord(method, status, client_id, authorization)
            )
        return status, body, out


def _read_form(environ: Mapping[str, Any]) -> tuple[list[tuple[str, str]], OAuth2Error | None]:
    """The form of a token request (like a framework: only for a form content type)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return [], None
    try:
        text = raw.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                         errors="strict"), None
    except (UnicodeDecodeError, ValueError):
        return [], InvalidRequestError("The body is not a UTF-8 form.")


class _ResourceRequest:
    def __init__(self, headers: Headers) -> None:
        self.headers = headers


def _public_key_set(jwks: Mapping[str, Any] | Key | KeySet) -> KeySet:
    if isinstance(jwks, KeySet):
        keys = jwks.keys
    elif isinstance(jwks, (RSAKey, ECKey, OKPKey)):
        keys = [jwks]
    elif isinstance(jwks, Mapping):
        data = dict(jwks)
        keys = KeySet.import_key_set(data if "keys" in data else {"keys": [data]}).keys
    else:
        raise TypeError(f"jwks: not a JWK Set, a JWK or a key: {type(jwks).__name__}")
    public = []
    for key in keys:
        if isinstance(key, OctKey):
            raise ValueError("private_key_jwt takes asymmetric keys")
        public.append(key.as_dict(private=False))
    return KeySet.import_key_set({"keys": public})


def _claimed_client_id(record: TokenRequestRecord) -> str | None:
    if record.client_id is not None:
        return record.client_id
    assertion = record.form.get("client_assertion")
    if assertion:
        try:
            claims = json.loads(jws.extract_compact(assertion.encode()).payload)
            sub = claims.get("sub") if isinstance(claims, dict) else None
            return sub if isinstance(sub, str) else None
        except (JoseError, ValueError):
            return None
    if "client_id" in record.form:
        return record.form["client_id"]
    basic_id, _ = extract_basic_authorization(
        Headers([(n.title(), v) for n, v in record.headers.items()])
    )
    return basic_id if isinstance(basic_id, str) else None
