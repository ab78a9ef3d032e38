"""The world the documentation's examples run in: the hosts they name, served over loopback.

Every example of ``README.rst`` and ``docs/`` names real-looking URLs
(``https://auth.example.com/oauth/token``, ``https://login.microsoftonline.com/...``). While a
page runs, those hosts resolve to a TLS server on 127.0.0.1 (a test CA the page's process
trusts) that hands each request to the emulator standing for that host: the package's own
``oauth_cc_auth.testing.Emulator``, one per identity provider (their token paths collide),
with the recipes' APIs (``tests/docs_backends.py``) beside them. Every HTTP library sees
real HTTP and TLS, so the examples run unchanged with requests, httpx, httpx2, aiohttp,
niquests, HTTPie and the command. A host not in :data:`HOSTS` does not resolve: nothing
leaves the machine.

The credentials the examples use, ``my-client-id`` / ``my-client-secret`` (FinCalc:
``12345``), are registered at every token endpoint, with the public keys of the key files
written into the page's working directory (:func:`write_files`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import make_server

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.jwk import RSAKey

from oauth_cc_auth.testing import EmulatedClient, Emulator, _tls
from oauth_cc_auth.testing._emulator import PRESET_SITES, SITES, _Handler, _ThreadingServer
from tests import docs_backends

CLIENT_ID = "my-client-id"
CLIENT_SECRET = "my-client-secret"
FINCALC_CLIENT_ID = 12345
ENTRA_TOKEN_URL = ("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/"
                   "token")
PINGONE_ENVIRONMENT = "a1b2c3d4-0000-4000-8000-000000000000"


@dataclasses.dataclass(frozen=True)
class Host:
    """A host of the examples: the emulator serving it (by key of :func:`_emulators`) and the
    provider whose protected resource answers every path that is not a token endpoint."""

    emulator: str
    provider: str


#: Every host an example may name.
HOSTS: dict[str, Host] = {
    "auth.example.com": Host("main", "rfc6749"),
    "api.example.com": Host("main", "rfc6749"),
    "login.example.com": Host("main", "rfc6749"),
    "as.example.com": Host("main", "rfc6749"),
    "api.fccfinance.com": Host("main", "fcc_finance"),
    "api.fccfinance.dev": Host("main", "fcc_finance"),
    "api.fincalc.co.uk": Host("main", "fincalc"),
    "api.pay.test.figure.com": Host("main", "figure"),
    "login.microsoftonline.com": Host("entra", "entra"),
    "example.us.auth0.com": Host("auth0", "auth0"),
    "example.okta.com": Host("okta", "okta"),
    "sso.example.com": Host("keycloak", "keycloak"),
    "example.auth.eu-west-1.amazoncognito.com": Host("cognito", "cognito"),
    "example.my.salesforce.com": Host("salesforce", "salesforce"),
    "auth.pingone.eu": Host("pingone", "pingone"),
    "example-abc123.zitadel.cloud": Host("zitadel", "zitadel"),
}

#: Where each preset's emulator serves its token endpoint (the examples' paths), and the
#: further paths served there as generic (``rfc6749``) token endpoints.
PRESET_PATHS: dict[str, tuple[str, tuple[str, ...]]] = {
    "entra": ("/contoso.onmicrosoft.com/oauth2/v2.0/token", ()),
    "auth0": ("/oauth/token", ()),
    "okta": ("/oauth2/default/v1/token", ("/oauth2/v1/token",)),
    "keycloak": ("/realms/demo/protocol/openid-connect/token",
                 ("/realms/acme/protocol/openid-connect/token",)),
    "cognito": ("/oauth2/token", ()),
    "salesforce": ("/services/oauth2/token", ()),
    "pingone": (f"/{PINGONE_ENVIRONMENT}/as/token", ()),
    "zitadel": ("/oauth/v2/token", ()),
}


@dataclasses.dataclass(frozen=True)
class Keys:
    """The key material of the examples' files, made once per process (RSA keys are slow)."""

    private_key: rsa.RSAPrivateKey
    app_key: rsa.RSAPrivateKey
    app_cert: x509.Certificate
    dpop_key: ec.EllipticCurvePrivateKey
    ca: trustme.CA
    client_cert: trustme.LeafCert
    server_cert: trustme.LeafCert

    def jwks(self) -> dict[str, Any]:
        """The public keys of ``private-key.pem`` (its ``kid``: ``my-key-id``) and ``app.key``."""
        keys = [RSAKey.import_key(_pem(key), {"kid": kid}).as_dict(private=False)
                for key, kid in ((self.private_key, "my-key-id"), (self.app_key, "my-app-key"))]
        return {"keys": keys}


def _pem(key: Any) -> bytes:
    return bytes(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


@functools.cache
def keys() -> Keys:
    app_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "my-app")])
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    app_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(app_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=30))
                .sign(app_key, hashes.SHA256()))
    ca = trustme.CA()
    return Keys(
        private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        app_key=app_key, app_cert=app_cert, dpop_key=ec.generate_private_key(ec.SECP256R1()),
        ca=ca, client_cert=ca.issue_cert("my-client.example.com"),
        server_cert=ca.issue_cert(*HOSTS),
    )


def write_files(directory: Path) -> None:
    """The files the examples name, written into *directory* (the page's working one)."""
    k = keys()
    (directory / "private-key.pem").write_bytes(_pem(k.private_key))
    (directory / "app.key").write_bytes(_pem(k.app_key))
    (directory / "app.crt").write_bytes(k.app_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "dpop-key.pem").write_bytes(_pem(k.dpop_key))
    cert = b"".join(blob.bytes() for blob in k.client_cert.cert_chain_pems)
    key = k.client_cert.private_key_pem.bytes()
    (directory / "client-cert.pem").write_bytes(cert)
    (directory / "client-key.pem").write_bytes(key)
    (directory / "client-cert-and-key.pem").write_bytes(cert + key)
    (directory / "client-secret").write_text(CLIENT_SECRET + "\n")
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "RS256"},
        {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": ENTRA_TOKEN_URL, "jti": uuid.uuid4().hex,
         "iat": now, "exp": now + 600},
        RSAKey.import_key(_pem(k.private_key)),
    )
    (directory / "azure-identity-token").write_text(assertion)
    for path in directory.iterdir():
        path.chmod(0o600)


def _emulators() -> dict[str, Emulator]:
    """The emulators of one page: the seed providers' and the generic one, and one per
    identity-provider preset."""
    jwks = keys().jwks()
    # Any path of the generic hosts is the generic resource, as addressed (a DPoP proof's
    # htu is checked against the URL the client named).
    emulators = {"main": Emulator(guard_every_path=True)}
    emulators["main"].add_token_path("/token")  # as.example.com
    for name, (path, generic_paths) in PRESET_PATHS.items():
        emulator = Emulator()
        emulator.add_preset(name, path)
        for generic in generic_paths:
            emulator.add_token_path(generic)
        emulators[name] = emulator
    # Keycloak located by its issuer (discovery): the realm's token endpoint.
    emulators["keycloak"].metadata_fields["token_endpoint"] = (
        "https://sso.example.com/realms/acme/protocol/openid-connect/token")
    for emulator in emulators.values():
        for provider in (*SITES, *PRESET_SITES):
            if provider == "fincalc":
                emulator.register_client(EmulatedClient(
                    "fincalc", FINCALC_CLIENT_ID, CLIENT_SECRET, scope="api_scope",
                    extra={"email_address": "me@example.com"}))
                continue
            extra = {"audience": "https://api.example.com"} if provider == "auth0" else {}
            emulator.register_client(EmulatedClient(provider, CLIENT_ID, CLIENT_SECRET,
                                                    extra=extra, jwks=jwks))
    return emulators


WSGIApp = Callable[..., Iterable[bytes]]


class Front:
    """The WSGI application of the world's server: each request to the emulator or backend
    of its host (``Host`` header); any path that is not the emulator's own (token endpoints,
    metadata) is the host's provider's protected resource."""

    def __init__(self, emulators: dict[str, Emulator]) -> None:
        self.emulators = emulators
        self.backends = docs_backends.routes(self.guard)

    def _host(self, environ: dict[str, Any]) -> tuple[str, Host]:
        name = environ.get("HTTP_HOST", "").rsplit(":", 1)[0].lower()
        host = HOSTS.get(name)
        if host is None:
            raise LookupError(name)
        return name, host

    def _token_paths(self, emulator: Emulator) -> set[str]:
        paths = {site.token_path for site in SITES.values()}
        paths.update(site.token_path for site in emulator._presets.values())
        paths.update(emulator._token_paths)
        return paths

    def _as_resource(self, environ: dict[str, Any], host: Host) -> dict[str, Any]:
        """*environ* with its path that of the host's provider's protected resource."""
        emulator = self.emulators[host.emulator]
        path = environ.get("PATH_INFO", "")
        if "/.well-known/" in path or path in self._token_paths(emulator) or \
                host.provider == "rfc6749":
            return environ
        site = SITES.get(host.provider) or PRESET_SITES[host.provider]
        return {**environ, "PATH_INFO": site.resource_path, "QUERY_STRING": ""}

    def guard(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """``None`` if the request carries a token its host's resource accepts; else the
        refusal (status line, headers, body)."""
        _, host = self._host(environ)
        probe = self._as_resource({**environ, "PATH_INFO": "/", "REQUEST_METHOD": "GET",
                                   "CONTENT_LENGTH": "0", "wsgi.input": _Empty()}, host)
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
            answer.update(status=status, headers=headers)

        body = b"".join(self.emulators[host.emulator](probe, start_response))
        if answer["status"].startswith("200"):
            return None
        return answer["status"], answer["headers"], body

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        try:
            name, host = self._host(environ)
        except LookupError:
            start_response("421 Misdirected Request", [("Content-Type", "text/plain")])
            return [b"not a host of the documentation's world\n"]
        path = environ.get("PATH_INFO", "")
        for backend_host, prefix, app in self.backends:
            if backend_host == name and path.startswith(prefix):
                return app(environ, start_response)
        return self.emulators[host.emulator](self._as_resource(environ, host), start_response)


class _Empty:
    def read(self, *_: Any) -> bytes:
        return b""


@dataclasses.dataclass
class World:
    """The running world of one page: its emulators, server and the CA file it trusts."""

    emulators: dict[str, Emulator]
    port: int
    ca_file: Path

    @property
    def emulator(self) -> Emulator:
        """The emulator of the generic site and the seed providers."""
        return self.emulators["main"]


_LOOPBACK_TLS = "127.0.0.1"
_patch_lock = threading.Lock()


@contextlib.contextmanager
def running(directory: Path) -> Iterator[World]:
    """Serve the world while the block runs: the examples' hosts resolve to it, TLS
    contexts trust its CA, and *directory* holds the CA file."""
    emulators = _emulators()
    k = keys()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    k.server_cert.configure_cert(context)
    server_class, handler_class = _tls.secured(_ThreadingServer, _Handler, context)
    server = make_server("127.0.0.1", 0, Front(emulators), server_class, handler_class)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="docs-world", daemon=True)
    thread.start()
    ca_file = directory / "docs-world-ca.pem"
    k.ca.cert_pem.write_to_path(str(ca_file))
    port = server.server_port
    try:
        with _resolving(port), _trusting(k.ca):
            yield World(emulators, port, ca_file)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def _resolving(port: int) -> Iterator[None]:
    """The examples' hosts resolve to 127.0.0.1 port 443, and a connection to that address
    goes to *port*; any other name that is not loopback does not resolve."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, port_: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.lower().rstrip(".") in HOSTS:
            return real_getaddrinfo(_LOOPBACK_TLS, port_, *args, **kwargs)
        if name in (None, "localhost", "::1") or (
                isinstance(name, str) and name.startswith("127.")):
            return real_getaddrinfo(host, port_, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME,
                              f"{name!r} is not a host of the documentation's world "
                              "(tests/docs_world.py HOSTS)")

    def redirected(address: Any) -> Any:
        if isinstance(address, tuple) and address[:2] == (_LOOPBACK_TLS, 443):
            return (_LOOPBACK_TLS, port)
        return address

    def connect(self: socket.socket, address: Any) -> None:
        return real_connect(self, redirected(address))

    def connect_ex(self: socket.socket, address: Any) -> int:
        return real_connect_ex(self, redirected(address))

    with _patch_lock:
        socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        with _patch_lock:
            socket.getaddrinfo = real_getaddrinfo
            socket.socket.connect = real_connect  # type: ignore[method-assign]
            socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]


@contextlib.contextmanager
def _trusting(ca: trustme.CA) -> Iterator[None]:
    """Every client TLS context trusts the world's CA too (whatever bundle the HTTP library
    loaded: certifi, the system's), added as the context first wraps a connection."""
    real_wrap_socket = ssl.SSLContext.wrap_socket
    real_wrap_bio = ssl.SSLContext.wrap_bio
    cadata = ca.cert_pem.bytes().decode()

    def trust(context: ssl.SSLContext, server_side: bool) -> None:
        # Loading the same certificate again is harmless: OpenSSL keeps one.
        if not server_side and context.verify_mode != ssl.CERT_NONE:
            context.load_verify_locations(cadata=cadata)

    def wrap_socket(self: ssl.SSLContext, sock: Any, server_side: bool = False,
                    *args: Any, **kwargs: Any) -> Any:
        trust(self, server_side)
        return real_wrap_socket(self, sock, server_side, *args, **kwargs)

    def wrap_bio(self: ssl.SSLContext, incoming: Any, outgoing: Any,
                 server_side: bool = False, *args: Any, **kwargs: Any) -> Any:
        trust(self, server_side)
        return real_wrap_bio(self, incoming, outgoing, server_side, *args, **kwargs)

    ssl.SSLContext.wrap_socket = wrap_socket  # type: ignore[method-assign]
    ssl.SSLContext.wrap_bio = wrap_bio  # type: ignore[method-assign]
    try:
        yield
    finally:
        ssl.SSLContext.wrap_socket = real_wrap_socket  # type: ignore[method-assign]
        ssl.SSLContext.wrap_bio = real_wrap_bio  # type: ignore[method-assign]


