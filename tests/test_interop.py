"""Interoperability: every client flavour against a real Authlib authorization server, and
the same client authentication methods against the emulator.

The server (tests/authlib_server.py) is Authlib's own ``AuthorizationServer`` with its
``ClientCredentialsGrant``, its ``client_secret_basic`` parsing and its RFC 7523
``JWTBearerClientAssertion``, over loopback sockets. Each test registers its own clients on one
server per module, and drives the five flavours (requests, httpx sync and async, httpx2 sync and
async, the async ones on asyncio and on trio) through at least three token requests: the first,
one after the token expired on the client's clock, and one after the server revoked every token
(the API answers 401). The tests are async (anyio): the sync flavours send from a worker thread.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import anyio
import httpx
import httpx2
import pytest
import requests
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws, jwt
from joserfc.jwk import ECKey, Key, OctKey, RSAKey

import oauth_cc_auth
from oauth_cc_auth import MemoryCache
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import EmulatedClient, Emulator, FakeClock
from tests._anyio import BACKENDS
from tests.authlib_server import AuthlibServer, TokenRequestRecord

#: Seconds: every HTTP call, token requests included; three times that for one API request.
TIMEOUT = 10.0
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: (flavour, event loop): the sync flavours on one loop (they send from a worker thread of it),
#: the async ones on each.
FLAVOURS = [
    *((flavour, "asyncio") for flavour in ("requests", "httpx-sync", "httpx2-sync")),
    *((flavour, backend) for flavour in ("httpx-async", "httpx2-async") for backend in BACKENDS),
]
_AUTH_CLASSES: dict[str, Any] = {
    "requests": RequestsAuth,
    "httpx": HttpxAuth,
    "httpx2": Httpx2Auth,
}


# -- the server and the flavours ----------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[AuthlibServer]:
    with AuthlibServer(expires_in=3600) as authlib_server:
        yield authlib_server


@pytest.fixture(autouse=True)
def _no_server_failure(server: AuthlibServer) -> Iterator[None]:
    """An exception in the server (a 500) fails the test during which it happened."""
    before = len(server.errors)
    yield
    assert server.errors[before:] == []


class Driver:
    """Sends API requests through one flavour: a user's session or client, kept for the test,
    with the auth object given per request. The sync flavours send from a worker thread, the
    async ones on the test's event loop; each request has a deadline."""

    def __init__(self, flavour: str) -> None:
        self.flavour = flavour
        self.library, _, mode = flavour.partition("-")
        self.is_async = mode == "async"
        self.lib: Any = {"httpx": httpx, "httpx2": httpx2}.get(self.library)
        self._auths: list[Any] = []
        self._client: Any = None

    async def __aenter__(self) -> Driver:
        if self.library == "requests":
            self._client = requests.Session()
        elif not self.is_async:
            self._client = self.lib.Client(timeout=TIMEOUT)
        else:
            self._client = self.lib.AsyncClient(timeout=TIMEOUT)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if not self.is_async:
            for auth in self._auths:
                auth.close()
            self._client.close()
            return
        with anyio.fail_after(TIMEOUT * 3):
            for auth in self._auths:
                await auth.aclose()
            await self._client.aclose()

    def auth(self, client_id: str, client_secret: str | None = None, **options: Any) -> Any:
        """This flavour's auth object, with a cache of its own and the client's timeouts."""
        options.setdefault("cache", MemoryCache())
        options.setdefault("timeout", TIMEOUT)
        options.setdefault("backoff", 0.0)
        auth = _AUTH_CLASSES[self.library](client_id, client_secret, **options)
        self._auths.append(auth)
        return auth

    async def get(self, auth: Any, url: str) -> tuple[int, Any]:
        """GET *url* with *auth*: the final status and JSON body."""
        with anyio.fail_after(TIMEOUT * 3):
            if self.is_async:
                response = await self._client.get(url, auth=auth)
            elif self.library == "requests":
                response = await anyio.to_thread.run_sync(
                    lambda: self._client.get(url, auth=auth, timeout=TIMEOUT)
                )
            else:
                response = await anyio.to_thread.run_sync(
                    lambda: self._client.get(url, auth=auth)
                )
        return response.status_code, response.json()


#: The trio cases are slow (the default run has trio in tests/test_limits.py and others).
@pytest.fixture(params=[
    pytest.param(case, id="-".join(case) if case[0].endswith("async") else case[0],
                 marks=pytest.mark.slow if case[1] == "trio" else ())
    for case in FLAVOURS
])
def flavour_and_backend(request: pytest.FixtureRequest) -> tuple[str, str]:
    case: tuple[str, str] = request.param
    return case


@pytest.fixture
def anyio_backend(flavour_and_backend: tuple[str, str]) -> str:
    return flavour_and_backend[1]


@pytest.fixture
async def driver(flavour_and_backend: tuple[str, str]) -> AsyncIterator[Driver]:
    async with Driver(flavour_and_backend[0]) as flavour_driver:
        yield flavour_driver


def new_client_id(kind: str, driver: Driver) -> str:
    return f"{kind}-{driver.flavour}-{secrets.token_hex(4)}"


async def three_token_requests(
    driver: Driver,
    auth: Any,
    server: AuthlibServer,
    clock: FakeClock,
    client_id: str,
    before_token_request: Callable[[], None] = lambda: None,
) -> list[TokenRequestRecord]:
    """Four API requests through three token requests; returns the client's token requests,
    checked: all accepted. *before_token_request* runs before each of them."""
    answers = [await driver.get(auth, server.resource_url)]  # the first token
    answers.append(await driver.get(auth, server.resource_url))  # the same, from the cache
    clock.advance(3601)  # expired, on the client's clock (the server issues 3600 s tokens)
    before_token_request()
    answers.append(await driver.get(auth, server.resource_url))
    server.revoke_all()  # the next API request is answered 401: the client fetches anew
    before_token_request()
    answers.append(await driver.get(auth, server.resource_url))
    assert answers == [(200, {"ok": True, "client_id": client_id})] * 4
    records = server.requests_of(client_id)
    assert [(r.status, r.error, r.description) for r in records] == [(200, None, None)] * 3
    assert all(r.client_id == client_id for r in records)
    for record in records:
        assert record.method == "POST"
        assert record.form["grant_type"] == "client_credentials"
        assert record.headers["content-type"].startswith("application/x-www-form-urlencoded")
        assert record.duplicates == ()
    return records


@pytest.fixture(scope="module")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwks(key: Key, kid: str | None = None) -> dict[str, Any]:
    """The JWK Set the client registers: its public key, with *kid* if given."""
    jwk = dict(key.as_dict(private=False))
    if kid is not None:
        jwk["kid"] = kid
    return {"keys": [jwk]}


def checked_assertions(
    records: list[TokenRequestRecord],
    server: AuthlibServer,
    client_id: str,
    verify_key: Key,
    alg: str,
    *,
    method: str,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Decode (and verify) the assertion of every record: RFC 7523 §3 claims, a unique
    ``jti``, a lifetime of at most 60 s, issued now by the wall clock. Returns the headers
    and claims."""
    decoded = []
    now = time.time()
    for record in records:
        assert record.auth_method == method
        assert record.form["client_assertion_type"] == ASSERTION_TYPE
        assert "client_secret" not in record.form
        assert "authorization" not in record.headers
        assertion = record.form["client_assertion"]
        header = jws.extract_compact(assertion.encode()).headers()
        claims = jwt.decode(assertion, verify_key, algorithms=[alg]).claims
        assert header["alg"] == alg
        assert claims["iss"] == claims["sub"] == client_id
        assert claims["aud"] == server.token_url
        assert 0 < claims["exp"] - claims["iat"] <= 60
        assert abs(claims["iat"] - now) < 300  # the wall clock, not the FakeClock
        decoded.append((header, claims))
    jtis = [claims["jti"] for _, claims in decoded]
    assert all(isinstance(jti, str) and jti for jti in jtis)
    assert len(set(jtis)) == len(jtis)
    return decoded


# -- client_secret_basic ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_client_secret_basic_with_special_characters(
    server: AuthlibServer, driver: Driver
) -> None:
    # RFC 6749 §2.3.1: id and secret form-encoded, then Basic. Authlib's server percent-decodes
    # them (urllib's unquote: a space, "+" in the form encoding, would not come back; these do).
    client_id = f"basic+id/{driver.flavour}:{secrets.token_hex(4)}="
    secret = "pa+ss/wo=rd%3A:é€-" + secrets.token_urlsafe(24)
    server.register(client_id, method="client_secret_basic", secret=secret)
    clock = FakeClock()
    auth = driver.auth(client_id, secret, token_url=server.token_url,
                       auth_method="client_secret_basic", clock=clock)

    records = await three_token_requests(driver, auth, server, clock, client_id)

    credentials = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    expected = "Basic " + base64.b64encode(credentials).decode("ascii")
    assert [r.headers["authorization"] for r in records] == [expected] * 3
    assert all(r.auth_method == "client_secret_basic" for r in records)
    assert all("client_secret" not in r.form and "client_assertion" not in r.form
               for r in records)


# -- private_key_jwt and client_secret_jwt ----------------------------------------------------


@pytest.mark.anyio
async def test_private_key_jwt_rsa_pem_with_kid(
    server: AuthlibServer, driver: Driver, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    pem = rsa_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = RSAKey.import_key(rsa_private_key.public_key())
    client_id = new_client_id("pkj-rsa", driver)
    server.register(client_id, method="private_key_jwt", jwks=public_jwks(public, "rsa-key-1"))
    clock = FakeClock()
    auth = driver.auth(client_id, None, token_url=server.token_url, private_key=pem,
                       private_key_id="rsa-key-1", clock=clock)

    records = await three_token_requests(driver, auth, server, clock, client_id)

    decoded = checked_assertions(records, server, client_id, public, "RS256",
                                 method="private_key_jwt")
    assert [header.get("kid") for header, _ in decoded] == ["rsa-key-1"] * 3


@pytest.mark.anyio
async def test_private_key_jwt_ec_jwk_mapping(server: AuthlibServer, driver: Driver) -> None:
    key = ECKey.generate_key("P-256")
    private_jwk = dict(key.as_dict(private=True))
    assert "kid" not in private_jwk
    thumbprint = key.thumbprint()
    client_id = new_client_id("pkj-ec", driver)
    # The registered key has a kid: the client may name the key by its RFC 7638 thumbprint,
    # or not name it at all (the server then takes its only key).
    server.register(client_id, method="private_key_jwt", jwks=public_jwks(key, thumbprint))
    clock = FakeClock()
    auth = driver.auth(client_id, token_url=server.token_url, auth_method="private_key_jwt",
                       private_key=private_jwk, clock=clock)

    records = await three_token_requests(driver, auth, server, clock, client_id)

    public = ECKey.import_key(key.as_dict(private=False))
    decoded = checked_assertions(records, server, client_id, public, "ES256",
                                 method="private_key_jwt")
    assert all(header.get("kid") in (None, thumbprint) for header, _ in decoded)


@pytest.mark.anyio
async def test_private_key_jwt_pem_file(
    server: AuthlibServer, driver: Driver, rsa_private_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    path = tmp_path / "client-key.pem"
    path.write_bytes(rsa_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # "BEGIN RSA PRIVATE KEY"
        serialization.NoEncryption(),
    ))
    public = RSAKey.import_key(rsa_private_key.public_key())
    thumbprint = public.thumbprint()
    client_id = new_client_id("pkj-file", driver)
    server.register(client_id, method="private_key_jwt", jwks=public_jwks(public, thumbprint))
    clock = FakeClock()
    auth = driver.auth(client_id, token_url=server.token_url, private_key=str(path),
                       clock=clock)

    records = await three_token_requests(driver, auth, server, clock, client_id)

    decoded = checked_assertions(records, server, client_id, public, "RS256",
                                 method="private_key_jwt")
    assert all(header.get("kid") in (None, thumbprint) for header, _ in decoded)


@pytest.mark.anyio
async def test_client_secret_jwt(server: AuthlibServer, driver: Driver) -> None:
    secret = secrets.token_urlsafe(32)  # 43 bytes: an HS256 key of at least 32
    client_id = new_client_id("csj", driver)
    server.register(client_id, method="client_secret_jwt", secret=secret)
    clock = FakeClock()
    auth = driver.auth(client_id, secret, token_url=server.token_url,
                       auth_method="client_secret_jwt", clock=clock)

    records = await three_token_requests(driver, auth, server, clock, client_id)

    checked_assertions(records, server, client_id, OctKey.import_key(secret.encode()),
                       "HS256", method="client_secret_jwt")
    assert all(secret not in json.dumps(r.form) for r in records)


# -- external assertions ------------------------------------------------------------------------


class Signer:
    """Signs assertions for a client with Authlib, as a workload identity system would."""

    def __init__(self, server: AuthlibServer, client_id: str) -> None:
        self.server = server
        self.client_id = client_id
        self.key = ECKey.generate_key("P-256")
        self.issued: list[str] = []

    def jwks(self) -> dict[str, Any]:
        return public_jwks(self.key)

    def sign(self) -> str:
        assertion = private_key_jwt_sign(
            self.key, self.client_id, self.server.token_url, alg="ES256", expires_in=60
        )
        self.issued.append(assertion)
        return assertion  # type: ignore[no-any-return]


@pytest.mark.anyio
async def test_client_assertion_file_rewritten_before_each_token_request(
    server: AuthlibServer, driver: Driver, tmp_path: Path
) -> None:
    client_id = new_client_id("ext-file", driver)
    signer = Signer(server, client_id)
    server.register(client_id, method="private_key_jwt", jwks=signer.jwks())
    token_file = tmp_path / "token"

    def rotate() -> None:
        # As the kubelet does: the new content appears at once, never half-written.
        fresh = tmp_path / "token.new"
        fresh.write_text(signer.sign() + "\n")
        os.replace(fresh, token_file)

    rotate()
    clock = FakeClock()
    auth = driver.auth(client_id, token_url=server.token_url, client_assertion=str(token_file),
                       clock=clock)

    records = await three_token_requests(driver, auth, server, clock, client_id, rotate)

    # Re-read for every token request: each sent the assertion written just before it.
    assert [r.form["client_assertion"] for r in records] == signer.issued
    checked_assertions(records, server, client_id, signer.key, "ES256",
                       method="private_key_jwt")


@pytest.mark.anyio
async def test_client_assertion_callable(server: AuthlibServer, driver: Driver) -> None:
    client_id = new_client_id("ext-call", driver)
    signer = Signer(server, client_id)
    server.register(client_id, method="private_key_jwt", jwks=signer.jwks())
    clock = FakeClock()
    auth = driver.auth(client_id, token_url=server.token_url, client_assertion=signer.sign,
                       clock=clock)

    records = await three_token_requests(driver, auth, server, clock, client_id)

    assert [r.form["client_assertion"] for r in records] == signer.issued
    checked_assertions(records, server, client_id, signer.key, "ES256",
                       method="private_key_jwt")


@pytest.mark.anyio
async def test_replayed_external_assertion_is_refused(
    server: AuthlibServer, driver: Driver
) -> None:
    client_id = new_client_id("replay", driver)
    signer = Signer(server, client_id)
    server.register(client_id, method="private_key_jwt", jwks=signer.jwks())
    assertion = signer.sign()
    clock = FakeClock()
    auth = driver.auth(client_id, token_url=server.token_url,
                       client_assertion=lambda: assertion, clock=clock)

    assert await driver.get(auth, server.resource_url) == (
        200, {"ok": True, "client_id": client_id}
    )
    clock.advance(3601)
    with pytest.raises(oauth_cc_auth.TokenRequestError) as info:
        await driver.get(auth, server.resource_url)

    assert info.value.error == "invalid_client"
    assert assertion not in str(info.value)
    assert assertion not in repr(info.value)
    records = server.requests_of(client_id)  # refused once, and not retried
    assert [(r.status, r.error) for r in records] == [(200, None), (400, "invalid_client")]
    assert records[1].description == "JWT ID is used before."
    assert server.assertions.count(assertion) == 2


# -- the same methods against the emulator ------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator() as running:
        yield running


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_jwt",
                                    "private_key_jwt", "client_assertion"])
async def test_every_method_against_the_emulator(
    emulator: Emulator, driver: Driver, method: str, tmp_path: Path,
    rsa_private_key: rsa.RSAPrivateKey,
) -> None:
    """The emulator checks client authentication as strictly (RFC 6749 §2.3.1 decoding with
    unquote_plus, one-time jti, aud, exp): every token request of every method is accepted."""
    client_id = new_client_id(method, driver)
    secret: str | None = "pa+ss /wo=rd%3A:é€-" + secrets.token_urlsafe(24)
    options: dict[str, Any] = {"auth_method": method}
    jwks = None
    if method == "private_key_jwt":
        public = RSAKey.import_key(rsa_private_key.public_key())
        jwks, secret = public_jwks(public), None
        options["private_key"] = rsa_private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    elif method == "client_assertion":
        key = ECKey.generate_key("P-256")
        jwks, secret, options = public_jwks(key), None, {}
        path = tmp_path / "token"

        def rotate() -> None:
            fresh = tmp_path / "token.new"
            fresh.write_text(private_key_jwt_sign(key, client_id, emulator.token_url("rfc6749"),
                                                  alg="ES256", expires_in=60))
            os.replace(fresh, path)

        options["client_assertion"] = path
    emulator.register_client(EmulatedClient("rfc6749", client_id, secret, jwks=jwks))
    clock = FakeClock()
    auth = driver.auth(client_id, secret, token_url=emulator.token_url("rfc6749"), clock=clock,
                       **options)
    url = emulator.resource_url("rfc6749")
    before = len(emulator.client_assertions)
    start = emulator.token_requests["rfc6749"]
    for step in range(3):
        if method == "client_assertion":
            rotate()
        status, body = await driver.get(auth, url)
        assert (status, body["client_id"]) == (200, client_id)
        if step == 0:
            clock.advance(3601)  # expired on the client's clock
        else:
            emulator.revoke_all()  # the next API request is answered 401
    # Three token requests, each accepted (a refusal raises TokenRequestError).
    assert emulator.token_requests["rfc6749"] - start == 3
    assertions = emulator.client_assertions[before:]
    if method == "client_secret_basic":
        assert assertions == []
        return
    assert len(assertions) == 3
    claims = [json.loads(jws.extract_compact(a.encode()).payload) for a in assertions]
    assert len({c["jti"] for c in claims}) == 3
    assert all(0 < c["exp"] - c["iat"] <= 60 for c in claims)
