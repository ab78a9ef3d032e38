"""Interoperability of DPoP (RFC 9449) against an authorization server that is not ours.

The server (tests/dpop_server.py) is authgent-server from PyPI, in a subprocess on 127.0.0.1:
its token endpoint verifies DPoP proofs (ES256 signature, ``typ``, ``htm``, ``htu``, ``iat``,
a nonce when DPoP is required) and binds the token to the proof key (``cnf.jkt``,
``token_type`` ``DPoP``); its resource checks the token with authgent's own validation and the
proof with authgent's own ``verify_dpop_proof`` (``ath``, the bound key, the request's method
and URL, the nonce); the harness adds ``jti`` replay refusal.

First, requests-oauth2client's DPoP client proves the harness works and that DPoP is really
enforced (a DPoP-bound token sent as Bearer, a proof for another URL, method, token or key, a
replayed proof: all refused). Then our client, each flavour (requests, httpx sync, httpx async
on asyncio, and on trio in the slow run), with ``dpop=True`` or ``dpop_key=``: the token is
DPoP-bound, API requests carry ``Authorization: DPoP`` with a fresh proof each, and server
nonces are obeyed at the token endpoint and at the resource.

Every call has a deadline: the HTTP clients' timeouts, and each test step runs under
``anyio.fail_after`` (the sync flavours in a worker thread abandoned on timeout).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import httpx2
import pytest
import requests
from joserfc.jwk import ECKey
from requests_oauth2client import ClientSecretPost, DPoPKey, OAuth2Client

from oauth_cc_auth import MemoryCache
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from tests.dpop_server import DPoPServer

#: Seconds: every HTTP call; each test step gets three times that.
TIMEOUT = 10.0
#: (flavour, event loop): the sync flavours on asyncio (they run in a worker thread of it).
FLAVOURS = [("requests", "asyncio"), ("httpx-sync", "asyncio"), ("httpx-async", "asyncio"),
            ("httpx2-sync", "asyncio"), ("httpx2-async", "asyncio"), ("httpx-async", "trio")]
T = TypeVar("T")


# -- the servers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[DPoPServer]:
    """DPoP optional, no nonces: a proof gets a DPoP-bound token."""
    with DPoPServer() as dpop_server:
        yield dpop_server


@pytest.fixture(scope="module")
def nonce_server() -> Iterator[DPoPServer]:
    """DPoP required, with server nonces at the token endpoint and at the resource."""
    with DPoPServer(require_dpop=True) as dpop_server:
        yield dpop_server


def ath(token: str) -> str:
    """RFC 9449 §4.2: base64url of the SHA-256 of the access token."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of an EC public JWK."""
    return ECKey.import_key(jwk).thumbprint()


def since(server: DPoPServer, before: int, path: str) -> list[dict[str, Any]]:
    """The records of *path* made after the first *before* records."""
    return [r for r in server.records()[before:] if r["path"] == path]


async def in_thread(fn: Callable[[], T]) -> T:
    """*fn* in a worker thread, with a deadline (the thread is abandoned on timeout)."""
    with anyio.fail_after(TIMEOUT * 3):
        return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)


# -- the reference client: the harness works and DPoP is enforced ------------------------------


def reference_client(server: DPoPServer, client_id: str, secret: str,
                     dpop_key: DPoPKey | None = None) -> OAuth2Client:
    return OAuth2Client(
        token_endpoint=server.token_url,
        auth=ClientSecretPost(client_id, secret),
        dpop_bound_access_tokens=True,
        # http:// on loopback; the default generator makes an ES256 key.
        testing=True,
        **({"dpop_key_generator": lambda alg: dpop_key} if dpop_key is not None else {}),
    )


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_reference_client_gets_a_bound_token_and_calls_the_resource(
    server: DPoPServer,
) -> None:
    client_id, secret = server.register()
    key = DPoPKey.generate(alg="ES256")
    before = len(server.records())

    def flow() -> tuple[Any, requests.Response, requests.Response]:
        token = reference_client(server, client_id, secret, key).client_credentials()
        with requests.Session() as session:
            ok = session.get(server.resource_url, auth=token, timeout=TIMEOUT)
            as_bearer = session.get(
                server.resource_url, timeout=TIMEOUT,
                headers={"Authorization": f"Bearer {token.access_token}"})
        return token, ok, as_bearer

    token, ok, as_bearer = await in_thread(flow)
    assert token.token_type == "DPoP"
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"ok": True, "client_id": client_id, "token_type": "DPoP",
                         "jkt": key.dpop_jkt}
    assert server.introspect(token.access_token)["token_type"] == "DPoP"
    # The token is bound: as a Bearer token it is refused.
    assert as_bearer.status_code == 401
    assert as_bearer.headers["WWW-Authenticate"].startswith("DPoP ")
    assert as_bearer.json()["error"] == "invalid_token"
    [token_request] = since(server, before, "/token")
    assert token_request["status"] == 200
    assert token_request["proof_header"]["typ"] == "dpop+jwt"
    assert thumbprint(token_request["proof_header"]["jwk"]) == key.dpop_jkt


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_bad_proofs_are_refused(server: DPoPServer) -> None:
    """authgent's checks, and the harness's replay check, do refuse what they must."""
    client_id, secret = server.register()
    key = DPoPKey.generate(alg="ES256")
    other_key = DPoPKey.generate(alg="ES256")
    token = await in_thread(
        lambda: reference_client(server, client_id, secret, key).client_credentials())
    url = server.resource_url
    good_ath = ath(token.access_token)

    def call(proof: str | None, *, method: str = "GET", scheme: str = "DPoP"
             ) -> requests.Response:
        headers = {"Authorization": f"{scheme} {token.access_token}"}
        if proof is not None:
            headers["DPoP"] = proof
        return requests.request(method, url, headers=headers, timeout=TIMEOUT)

    def forged(proof: str) -> str:
        head, _, signature = proof.rpartition(".")
        return f"{head}.{signature[:8][::-1]}{signature[8:]}" if signature[:8] != signature[
            :8][::-1] else f"{head}.{'A' * 8}{signature[8:]}"

    replayed = str(key.proof(htm="GET", htu=url, ath=good_ath))
    cases: dict[str, tuple[str | None, str]] = {
        "no proof": (None, "GET"),
        "another URL": (str(key.proof(htm="GET", htu=url + "/other", ath=good_ath)), "GET"),
        "another method": (str(key.proof(htm="POST", htu=url, ath=good_ath)), "GET"),
        "no ath": (str(key.proof(htm="GET", htu=url)), "GET"),
        "ath of another token": (str(key.proof(htm="GET", htu=url, ath=ath("x"))), "GET"),
        "another key": (str(other_key.proof(htm="GET", htu=url, ath=good_ath)), "GET"),
        "a forged signature": (forged(str(key.proof(htm="GET", htu=url, ath=good_ath))), "GET"),
    }
    for name, (proof, method) in cases.items():
        response = await in_thread(lambda p=proof, m=method: call(p, method=m))
        assert response.status_code == 401, name
        assert response.headers["WWW-Authenticate"].startswith("DPoP "), name
        assert response.json()["error"] == "invalid_dpop_proof", (name, response.text)

    first = await in_thread(lambda: call(replayed))
    again = await in_thread(lambda: call(replayed))
    assert first.status_code == 200, first.text
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_dpop_proof"

    # At the token endpoint: a proof for another URL, or a replayed one, gets no token.
    def token_request(proof: str) -> requests.Response:
        return requests.post(
            server.token_url, timeout=TIMEOUT, headers={"DPoP": proof},
            data={"grant_type": "client_credentials", "client_id": client_id,
                  "client_secret": secret})

    wrong_htu = await in_thread(
        lambda: token_request(str(key.proof(htm="POST", htu=server.base_url + "/other"))))
    assert wrong_htu.status_code in (400, 401)
    assert wrong_htu.json()["error"] == "invalid_dpop_proof"
    proof = str(key.proof(htm="POST", htu=server.token_url))
    assert (await in_thread(lambda: token_request(proof))).status_code == 200
    replay = await in_thread(lambda: token_request(proof))
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_dpop_proof"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_reference_client_with_nonces(nonce_server: DPoPServer) -> None:
    server = nonce_server
    client_id, secret = server.register()
    before = len(server.records())

    def flow() -> tuple[requests.Response, requests.Response, Any]:
        without_proof = requests.post(
            server.token_url, timeout=TIMEOUT,
            data={"grant_type": "client_credentials", "client_id": client_id,
                  "client_secret": secret})
        token = reference_client(server, client_id, secret).client_credentials()
        ok = requests.get(server.resource_url, auth=token, timeout=TIMEOUT)
        return without_proof, ok, token

    without_proof, ok, token = await in_thread(flow)
    assert without_proof.status_code == 400  # DPoP is required
    assert ok.status_code == 200, ok.text
    assert token.token_type == "DPoP"
    token_requests = since(server, before, "/token")[1:]
    assert [r["status"] for r in token_requests] == [401, 200]
    assert "nonce" not in token_requests[0]["proof_claims"]
    assert token_requests[1]["proof_claims"]["nonce"]
    resource_requests = since(server, before, "/resource")
    assert [r["status"] for r in resource_requests] == [401, 200]
    assert resource_requests[1]["proof_claims"]["nonce"]


# -- our client ---------------------------------------------------------------------------------


class Driver:
    """One flavour of our client: its auth objects, its HTTP client, deadlines on each step."""

    def __init__(self, flavour: str) -> None:
        self.flavour = flavour
        self.is_async = flavour.endswith("-async")
        self._auths: list[Any] = []
        self._client: Any = None

    async def __aenter__(self) -> Driver:
        lib = httpx2 if self.flavour.startswith("httpx2") else httpx
        if self.flavour == "requests":
            self._client = requests.Session()
        elif self.is_async:
            self._client = lib.AsyncClient(timeout=TIMEOUT)
        else:
            self._client = lib.Client(timeout=TIMEOUT)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with anyio.fail_after(TIMEOUT * 3):
            for auth in self._auths:
                if self.is_async:
                    await auth.aclose()
                else:
                    auth.close()
            if self.is_async:
                await self._client.aclose()
            else:
                self._client.close()

    def auth(self, server: DPoPServer, client_id: str, secret: str, **options: Any) -> Any:
        """This flavour's auth object for *server*'s token endpoint: ``dpop=True`` unless
        *options* give a ``dpop_key``."""
        if "dpop_key" not in options:
            options.setdefault("dpop", True)
        options.setdefault("cache", MemoryCache())
        options.setdefault("timeout", TIMEOUT)
        options.setdefault("backoff", 0.0)
        auth_class = {"requests": RequestsAuth, "httpx": HttpxAuth,
                      "httpx2": Httpx2Auth}[self.flavour.split("-")[0]]
        auth = auth_class(client_id, secret, token_url=server.token_url, **options)
        self._auths.append(auth)
        return auth

    async def get_token(self, auth: Any) -> Any:
        if self.is_async:
            with anyio.fail_after(TIMEOUT * 3):
                return await auth.aget_token()
        return await in_thread(auth.get_token)

    async def request(self, auth: Any, method: str, url: str) -> Any:
        """*method* *url* with *auth* through this flavour's client: the final response."""
        if self.is_async:
            with anyio.fail_after(TIMEOUT * 3):
                return await self._client.request(method, url, auth=auth)
        if self.flavour == "requests":
            self._client.auth = auth
            return await in_thread(
                lambda: self._client.request(method, url, timeout=TIMEOUT))
        return await in_thread(lambda: self._client.request(method, url, auth=auth))


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


def check_proof(record: dict[str, Any], htm: str, htu: str, token: str | None = None) -> None:
    """*record*'s request carried one well-formed proof for *htm* *htu* (and *token*)."""
    assert record["dpop_count"] == 1
    header, claims = record["proof_header"], record["proof_claims"]
    assert header["typ"] == "dpop+jwt"
    assert header["alg"] == "ES256"
    assert "d" not in header["jwk"]  # the public key only
    assert claims["htm"] == htm
    assert claims["htu"] == htu
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 16
    assert abs(claims["iat"] - time.time()) < 60
    if token is None:
        assert "ath" not in claims
    else:
        assert claims["ath"] == ath(token)


@pytest.mark.anyio
@pytest.mark.parametrize("auth_method", ["client_secret_post", "client_secret_basic"])
async def test_dpop_bound_token(server: DPoPServer, driver: Driver, auth_method: str) -> None:
    client_id, secret = server.register(auth_method)
    before = len(server.records())
    auth = driver.auth(server, client_id, secret, auth_method=auth_method)

    token = await driver.get_token(auth)

    assert token.token_type == "DPoP"
    assert token.authorization == f"DPoP {token.access_token}"
    assert token.authorization.startswith("DPoP ")
    introspected = server.introspect(token.access_token)
    assert introspected["active"] is True
    assert introspected["token_type"] == "DPoP"
    assert introspected["client_id"] == client_id
    [token_request] = since(server, before, "/token")
    assert token_request["status"] == 200
    assert token_request["scheme"] == ("Basic" if auth_method == "client_secret_basic" else None)
    check_proof(token_request, "POST", server.token_url)


@pytest.mark.anyio
async def test_api_requests_carry_a_fresh_proof_each(server: DPoPServer, driver: Driver) -> None:
    client_id, secret = server.register()
    before = len(server.records())
    auth = driver.auth(server, client_id, secret)

    answers = []
    for method, url in [("GET", server.resource_url), ("POST", server.resource_url),
                        ("GET", server.resource_url + "?page=2&q=a%20b")]:
        response = await driver.request(auth, method, url)
        assert response.status_code == 200, response.text
        answers.append(response.json())

    [token_request] = since(server, before, "/token")
    jkt = thumbprint(token_request["proof_header"]["jwk"])
    assert answers == [{"ok": True, "client_id": client_id, "token_type": "DPoP",
                        "jkt": jkt}] * 3
    token = await driver.get_token(auth)
    api_requests = since(server, before, "/resource")
    assert [r["status"] for r in api_requests] == [200, 200, 200]
    for record, method in zip(api_requests, ["GET", "POST", "GET"], strict=True):
        assert record["scheme"] == "DPoP"
        # htu: the URL without its query (RFC 9449 §4.2).
        check_proof(record, method, server.resource_url, token.access_token)
        assert thumbprint(record["proof_header"]["jwk"]) == jkt
    jtis = [r["proof_claims"]["jti"] for r in [token_request, *api_requests]]
    assert len(set(jtis)) == len(jtis)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("form", ["pem", "path", "jwk"])
async def test_dpop_key_given(server: DPoPServer, tmp_path: Path, form: str) -> None:
    """``dpop_key=``: a PEM, a path to one, or a private JWK; the token is bound to it."""
    key = ECKey.generate_key("P-256")
    pem = key.as_pem(private=True).decode()
    path = tmp_path / "dpop.pem"
    path.write_text(pem)
    given: Any = {"pem": pem, "path": str(path), "jwk": key.as_dict(private=True)}[form]
    client_id, secret = server.register()
    async with Driver("requests") as requests_driver:
        auth = requests_driver.auth(server, client_id, secret, dpop_key=given)
        response = await requests_driver.request(auth, "GET", server.resource_url)
    assert response.status_code == 200, response.text
    assert response.json()["jkt"] == key.thumbprint()


@pytest.mark.anyio
async def test_server_nonces(nonce_server: DPoPServer, driver: Driver) -> None:
    """The server demands a nonce at the token endpoint (authgent answers 401
    ``use_dpop_nonce`` with ``DPoP-Nonce``) and at the resource (401
    ``WWW-Authenticate: DPoP error="use_dpop_nonce"`` with ``DPoP-Nonce``): the client retries
    once each with the nonce, with a fresh proof."""
    server = nonce_server
    client_id, secret = server.register()
    before = len(server.records())
    auth = driver.auth(server, client_id, secret)

    response = await driver.request(auth, "GET", server.resource_url)

    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    token_requests = since(server, before, "/token")
    assert [r["status"] for r in token_requests] == [401, 200]
    assert "nonce" not in token_requests[0]["proof_claims"]
    assert token_requests[1]["proof_claims"]["nonce"]
    api_requests = since(server, before, "/resource")
    # The resource shares the token endpoint's origin (and authgent its nonces): the nonce
    # remembered for the origin is accepted there at once.
    assert [r["status"] for r in api_requests] == [200]
    nonce = token_requests[1]["proof_claims"]["nonce"]
    assert api_requests[0]["proof_claims"]["nonce"] == nonce
    records = [*token_requests, *api_requests]
    assert len({r["proof_claims"]["jti"] for r in records}) == len(records)


@pytest.mark.anyio
async def test_resource_nonce_is_remembered(nonce_server: DPoPServer, driver: Driver) -> None:
    """RFC 9449 §8.2/§9: a nonce the resource gave is sent on the next requests to it, until it
    gives another: the second API request is not challenged again."""
    server = nonce_server
    client_id, secret = server.register()
    auth = driver.auth(server, client_id, secret)
    response = await driver.request(auth, "GET", server.resource_url)  # the token, a nonce
    assert response.status_code == 200, response.text
    auth._manager.dpop._nonces.clear()  # as if the API were on an origin of its own
    before = len(server.records())

    for _ in range(2):
        response = await driver.request(auth, "GET", server.resource_url)
        assert response.status_code == 200, response.text

    assert since(server, before, "/token") == []  # the challenge is no renewal
    api_requests = since(server, before, "/resource")
    assert [r["status"] for r in api_requests] == [401, 200, 200]
    assert api_requests[2]["proof_claims"]["nonce"] == api_requests[1]["proof_claims"]["nonce"]


def test_server_record_shows_no_credentials(server: DPoPServer) -> None:
    """The harness's records keep the Authorization scheme only, never a token or secret."""
    client_id, secret = server.register()
    requests.post(server.token_url, timeout=TIMEOUT,
                  data={"grant_type": "client_credentials", "client_id": client_id,
                        "client_secret": secret})
    assert secret not in json.dumps(server.records())
