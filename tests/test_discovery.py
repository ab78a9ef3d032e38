"""Discovery by ``issuer=`` (RFC 8414, OpenID Connect): the pure functions of ``_discovery``,
the metadata fetched on the first token request through every flavour, its single flight,
its errors, the settings and the ``discover`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import httpx2
import pytest
import requests

from oauth_cc_auth import MemoryCache
from oauth_cc_auth._actions import TransportFailure
from oauth_cc_auth._config import build_config
from oauth_cc_auth._discovery import (
    NotHere,
    ServerMetadata,
    choose_auth_method,
    judge_metadata,
    metadata_request,
    metadata_urls,
    read_metadata,
    resolve,
)
from oauth_cc_auth._exchange import Retry
from oauth_cc_auth._messages import TokenHTTPResponse
from oauth_cc_auth.errors import ConfigurationError, TokenEndpointError
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import Emulator, Reply
from tests._anyio import BACKENDS
from tests._contention import acontend, contend
from tests.authlib_server import AuthlibServer
from tests.conftest import CLIENT_ID, SECRET, Harness
from tests.test_concurrency import TASKS, THREADS
from tests.test_loopback import sync_use_while_its_task_is_held

ISSUER = "https://auth.example"
ROOT = Path(__file__).resolve().parent.parent


def document(**fields: Any) -> bytes:
    base = {"issuer": ISSUER, "token_endpoint": ISSUER + "/oauth/token"}
    return json.dumps({**base, **fields}).encode()


def answer(status: int, body: bytes = b"", **headers: str) -> TokenHTTPResponse:
    return TokenHTTPResponse(status, headers, body)


def config(**options: Any) -> Any:
    options.setdefault("issuer", ISSUER)
    return build_config(CLIENT_ID, SECRET, **options)


def never(_: str) -> str:
    return _


# -- the pure functions --------------------------------------------------------------------------


class TestUrls:
    def test_issuer_without_a_path(self) -> None:
        assert metadata_urls("https://auth.example") == (
            "https://auth.example/.well-known/oauth-authorization-server",
            "https://auth.example/.well-known/openid-configuration",
        )

    def test_path_insertion(self) -> None:
        # RFC 8414 §3.1: inserted between the host and the path; OpenID Connect: appended.
        assert metadata_urls("https://auth.example:8443/tenant/a") == (
            "https://auth.example:8443/.well-known/oauth-authorization-server/tenant/a",
            "https://auth.example:8443/tenant/a/.well-known/openid-configuration",
        )

    def test_a_terminating_slash_is_removed(self) -> None:
        assert metadata_urls("https://auth.example/t/")[0] == (
            "https://auth.example/.well-known/oauth-authorization-server/t"
        )

    def test_the_request_is_a_bodiless_get(self) -> None:
        request = metadata_request("https://auth.example/.well-known/x")
        assert (request.method, request.body, dict(request.headers)) == (
            "GET", b"", {"Accept": "application/json"})


class TestReadMetadata:
    def test_the_fields_used(self) -> None:
        metadata = read_metadata(ISSUER, document(
            token_endpoint_auth_methods_supported=["private_key_jwt"],
            dpop_signing_alg_values_supported=["ES256"],
            mtls_endpoint_aliases={"token_endpoint": "https://mtls.auth.example/token"},
        ), "src")
        assert metadata.token_endpoint == ISSUER + "/oauth/token"
        assert metadata.auth_methods == ("private_key_jwt",)
        assert metadata.dpop_signing_alg_values_supported == ("ES256",)
        assert dict(metadata.mtls_endpoint_aliases) == {
            "token_endpoint": "https://mtls.auth.example/token"}
        assert metadata.source == "src"

    def test_unstated_methods_are_rfc8414s_default(self) -> None:
        metadata = read_metadata(ISSUER, document(), "src")
        assert metadata.token_endpoint_auth_methods_supported is None
        assert metadata.auth_methods == ("client_secret_basic",)

    @pytest.mark.parametrize("issuer", [ISSUER + "/", "https://AUTH.example", None, 3])
    def test_the_issuer_must_be_equal(self, issuer: object) -> None:
        with pytest.raises(ConfigurationError, match=r"RFC 8414 §3\.3"):
            read_metadata(ISSUER, document(issuer=issuer), "src")

    @pytest.mark.parametrize("body", [b"[]", b"not json", b"[" * 100_000, document(
        token_endpoint=None), document(token_endpoint_auth_methods_supported="basic"),
        document(mtls_endpoint_aliases=["x"])])
    def test_unusable_documents(self, body: bytes) -> None:
        with pytest.raises(ConfigurationError, match="metadata at src"):
            read_metadata(ISSUER, body, "src")


class TestJudgeMetadata:
    def judge(self, outcome: Any, attempt: int = 0) -> Any:
        return judge_metadata(config(backoff=0.0), "U", outcome, attempt=attempt,
                              redactor=never, rng=lambda: 0.5)

    def test_a_document(self) -> None:
        assert isinstance(self.judge(answer(200, document())), ServerMetadata)

    @pytest.mark.parametrize("status", [404, 405, 410])
    def test_fall_through(self, status: int) -> None:
        assert self.judge(answer(status)) == NotHere("U", status)

    @pytest.mark.parametrize("status", [301, 400, 401, 403])
    def test_other_statuses_are_configuration_errors(self, status: int) -> None:
        with pytest.raises(ConfigurationError, match=f"metadata URL U answered {status}"):
            self.judge(answer(status))

    def test_too_large(self) -> None:
        with pytest.raises(ConfigurationError, match="max_response_bytes"):
            self.judge(TokenHTTPResponse(200, {}, b"", unread="too large"))

    @pytest.mark.parametrize("outcome", [answer(503), answer(429),
                                         TransportFailure("ConnectError: refused")])
    def test_retried_then_a_token_endpoint_error(self, outcome: Any) -> None:
        assert isinstance(self.judge(outcome), Retry)
        with pytest.raises(TokenEndpointError, match="metadata URL U failed after 4 attempt"):
            self.judge(outcome, attempt=3)


class TestChooseAuthMethod:
    ALL = ("client_secret_post", "client_secret_basic", "private_key_jwt")

    def test_configured_and_offered(self) -> None:
        assert choose_auth_method("client_secret_basic", ["client_secret_basic"], self.ALL) == (
            "client_secret_basic")

    def test_configured_not_offered_names_the_offered(self) -> None:
        with pytest.raises(ConfigurationError,
                           match="it offers: private_key_jwt, tls_client_auth"):
            choose_auth_method("client_secret_post", ["private_key_jwt", "tls_client_auth"],
                               self.ALL)

    def test_configured_with_an_unstated_list(self) -> None:
        assert choose_auth_method("client_secret_post", (), self.ALL) == "client_secret_post"

    @pytest.mark.parametrize(("offered", "chosen"), [
        (["private_key_jwt", "client_secret_basic", "client_secret_post"], "client_secret_post"),
        (["private_key_jwt", "client_secret_basic"], "client_secret_basic"),
        ((), "client_secret_basic"),  # RFC 8414's default
    ])
    def test_default(self, offered: list[str], chosen: str) -> None:
        assert choose_auth_method(None, offered, self.ALL) == chosen

    def test_default_within_what_the_provider_accepts(self) -> None:
        assert choose_auth_method(None, ["client_secret_post", "client_secret_basic"],
                                  ("client_secret_basic",)) == "client_secret_basic"

    def test_no_default_offered(self) -> None:
        with pytest.raises(ConfigurationError, match="it offers: private_key_jwt"):
            choose_auth_method(None, ["private_key_jwt"], self.ALL)

    def test_keyed(self) -> None:
        assert choose_auth_method(None, (), self.ALL, keyed=True) == "private_key_jwt"
        with pytest.raises(ConfigurationError, match="does not offer private_key_jwt"):
            choose_auth_method(None, ["client_secret_basic"], self.ALL, keyed=True)


class TestConfig:
    def test_issuer_or_token_url(self) -> None:
        with pytest.raises(ConfigurationError, match="give issuer= or token_url="):
            config(token_url=ISSUER + "/token")

    @pytest.mark.parametrize(("issuer", "match"), [
        ("http://auth.example", "not https"), (ISSUER + "?a=b", "no query or fragment"),
        (ISSUER + "#f", "no query or fragment"), ("auth.example", "absolute"),
    ])
    def test_the_issuer_is_checked(self, issuer: str, match: str) -> None:
        with pytest.raises(ConfigurationError, match=match):
            config(issuer=issuer)

    def test_the_cache_key_is_the_issuers(self) -> None:
        assert config().cache_key == config(auth_method="client_secret_basic").cache_key
        assert config().cache_key != build_config(CLIENT_ID, SECRET, token_url=ISSUER).cache_key

    def test_resolve(self) -> None:
        metadata = read_metadata(ISSUER, document(
            token_endpoint_auth_methods_supported=["client_secret_basic"]), "src")
        resolved = resolve(config(), metadata)
        assert resolved.client.token_url == ISSUER + "/oauth/token"
        assert resolved.client.auth_method == "client_secret_basic"
        assert resolved.cache_key == config().cache_key

    def test_resolve_refuses_an_http_endpoint(self) -> None:
        metadata = read_metadata(ISSUER, document(token_endpoint="http://auth.example/t"), "s")
        with pytest.raises(ConfigurationError, match="token_endpoint in the metadata at s"):
            resolve(config(), metadata)


# -- through every flavour, in process -----------------------------------------------------------


class TestFlavours:
    def test_the_token_endpoint_is_found(self, harness: Harness) -> None:
        auth = harness.auth(issuer=ISSUER, token_url=None)
        assert auth.token_url is None  # construction: no I/O
        assert auth.metadata is None
        assert harness.server.received == []
        assert harness.get(auth).status_code == 200
        assert harness.get(auth).status_code == 200
        assert [(r.method, r.endpoint) for r in harness.server.received] == [
            ("GET", "metadata"), ("POST", "token"), ("GET", "resource"), ("GET", "resource")]
        metadata_get = harness.server.received[0]
        assert metadata_get.url == ISSUER + "/.well-known/oauth-authorization-server"
        assert metadata_get.body == b""
        assert "content-length" not in metadata_get.headers
        assert auth.token_url == ISSUER + "/oauth/token"
        assert b"client_secret=" in harness.server.received[1].body  # post: the first offered

    def test_path_issuer_and_oidc_fallback(self, harness: Harness) -> None:
        harness.server.answer_next(Reply(404), endpoint="metadata")
        auth = harness.auth(issuer=ISSUER + "/tenant-a", token_url=None)
        assert harness.get(auth).status_code == 200
        assert [r.url for r in harness.server.received_at("metadata")] == [
            ISSUER + "/.well-known/oauth-authorization-server/tenant-a",
            ISSUER + "/tenant-a/.well-known/openid-configuration",
        ]
        assert auth.metadata.source.endswith("/tenant-a/.well-known/openid-configuration")

    def test_mismatched_issuer(self, harness: Harness) -> None:
        harness.server.metadata_fields["issuer"] = "https://elsewhere.example"
        auth = harness.auth(issuer=ISSUER, token_url=None)
        with pytest.raises(ConfigurationError, match=r"elsewhere\.example"):
            harness.get(auth)
        assert harness.server.received_at("token") == []

    def test_configured_method_not_offered(self, harness: Harness) -> None:
        harness.server.metadata_fields["token_endpoint_auth_methods_supported"] = [
            "client_secret_basic", "private_key_jwt"]
        auth = harness.auth(issuer=ISSUER, token_url=None, auth_method="client_secret_post")
        with pytest.raises(ConfigurationError,
                           match="it offers: client_secret_basic, private_key_jwt"):
            harness.get(auth)

    def test_default_method_from_the_offered(self, harness: Harness) -> None:
        harness.server.metadata_fields["token_endpoint_auth_methods_supported"] = None
        auth = harness.auth(issuer=ISSUER, token_url=None)
        assert harness.get(auth).status_code == 200
        token_request = harness.server.received_at("token")[0]
        assert token_request.headers["authorization"].startswith("Basic ")  # RFC 8414 default
        assert b"client_secret" not in token_request.body

    def test_unreachable_metadata(self, harness: Harness) -> None:
        harness.server.answer_next(*[Reply(fail="drop")] * 4, endpoint="metadata")
        auth = harness.auth(issuer=ISSUER, token_url=None, max_retries=3)
        with pytest.raises(TokenEndpointError, match="after 4 attempt"):
            harness.get(auth)
        assert len(harness.server.received_at("metadata")) == 4
        assert harness.get(auth).status_code == 200  # a failure is not kept: tried again

    def test_one_fetch_for_many_auth_objects(self, harness: Harness) -> None:
        auths = [harness.auth(issuer=ISSUER, token_url=None, scope=f"s{i}") for i in range(3)]
        for auth in auths:
            assert harness.get(auth).status_code == 200
        assert len(harness.server.received_at("metadata")) == 1
        assert len(harness.server.received_at("token")) == 3


def test_from_env(harness: Harness) -> None:
    auth = harness.auth_class.from_env({
        "OAUTH_CC_CLIENT_ID": CLIENT_ID, "OAUTH_CC_CLIENT_SECRET": SECRET,
        "OAUTH_CC_ISSUER": ISSUER,
    }, cache=harness.cache)
    assert auth.issuer == ISSUER
    assert "issuer='https://auth.example'" in repr(auth)
    assert harness.get(auth).status_code == 200
    assert auth.token_url == ISSUER + "/oauth/token"


def test_from_config_refuses_both() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        RequestsAuth.from_config({"client_id": "c", "client_secret": "s", "issuer": ISSUER,
                                  "token_url": ISSUER + "/t"})


# -- over loopback -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Any:
    with Emulator() as served:
        yield served


AUTH_CLASSES = {"requests": RequestsAuth, "httpx": HttpxAuth, "httpx2": Httpx2Auth}


def sync_get(library: str, auth: Any, url: str) -> int:
    """GET *url* with *auth* through the sync client of *library*: the status."""
    if library == "requests":
        return int(requests.get(url, auth=auth, timeout=20).status_code)
    lib = httpx if library == "httpx" else httpx2
    with lib.Client(auth=auth, timeout=20) as http:
        return int(http.get(url).status_code)


async def async_get(library: str, auth: Any, url: str) -> int:
    """GET *url* with *auth* through the async client of *library*: the status."""
    lib = httpx if library == "httpx" else httpx2
    async with lib.AsyncClient(auth=auth, timeout=20) as http:
        return int((await http.get(url)).status_code)


def emulator_auth(emulator: Emulator, library: str, tenant: str | None) -> tuple[Any, str]:
    """A client of the emulator's ``rfc6749`` site located by its issuer (or a tenant's), with
    no request sent yet; and that issuer."""
    emulator.reset_counters()
    client = emulator.client("rfc6749")
    issuer = emulator.tenant_issuer(tenant) if tenant else emulator.issuer
    auth = AUTH_CLASSES[library](client.client_id, client.client_secret, issuer=issuer,
                                 cache=MemoryCache())
    assert emulator.received == []
    return auth, issuer


def check_emulator_requests(emulator: Emulator, auth: Any, issuer: str,
                            tenant: str | None) -> None:
    """One metadata GET, one token POST (client_secret_post: the first offered) to the
    endpoint it names, one API call, and nothing else."""
    client = emulator.client("rfc6749")
    well_known = emulator.url + "/.well-known/oauth-authorization-server" + (
        f"/{tenant}" if tenant else "")
    metadata_get, token_post, api_call = emulator.received
    assert [(r.method, r.url) for r in emulator.received] == [
        ("GET", well_known), ("POST", emulator.token_url("rfc6749")),
        ("GET", emulator.resource_url("rfc6749"))]
    assert metadata_get.body == b""
    assert "authorization" not in metadata_get.headers
    assert parse_qs(token_post.body.decode(), strict_parsing=True) == {
        "grant_type": ["client_credentials"], "client_id": [str(client.client_id)],
        "client_secret": [str(client.client_secret)]}
    assert "authorization" not in token_post.headers
    assert api_call.headers["authorization"].startswith("Bearer ")
    assert auth.metadata.issuer == issuer
    assert auth.token_url == emulator.token_url("rfc6749")


@pytest.mark.parametrize("tenant", [None, "tenant-a"])
@pytest.mark.parametrize("library", ["requests", "httpx", "httpx2"])
def test_loopback(emulator: Emulator, library: str, tenant: str | None) -> None:
    auth, issuer = emulator_auth(emulator, library, tenant)
    try:
        assert sync_get(library, auth, emulator.resource_url("rfc6749")) == 200
    finally:
        auth.close()
    check_emulator_requests(emulator, auth, issuer, tenant)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", BACKENDS)
@pytest.mark.parametrize("tenant", [None, "tenant-a"])
@pytest.mark.parametrize("library", ["httpx", "httpx2"])
async def test_loopback_async(emulator: Emulator, library: str, tenant: str | None) -> None:
    auth, issuer = emulator_auth(emulator, library, tenant)
    assert await async_get(library, auth, emulator.resource_url("rfc6749")) == 200
    check_emulator_requests(emulator, auth, issuer, tenant)


def authlib_auth(server: AuthlibServer, library: str) -> Any:
    """A client of Authlib's server located by its issuer, client_secret_basic (as registered)."""
    server.register("discovering", method="client_secret_basic", secret="a-secret")
    return AUTH_CLASSES[library]("discovering", "a-secret", issuer=server.url,
                                 auth_method="client_secret_basic", cache=MemoryCache())


def check_authlib_requests(server: AuthlibServer, auth: Any) -> None:
    """One metadata GET, one token POST to the endpoint it names, one API call accepted."""
    assert server.requests == [("GET", "/.well-known/oauth-authorization-server"),
                               ("POST", "/token"), ("GET", "/resource")]
    (token_post,) = server.token_requests
    assert (token_post.status, token_post.client_id, token_post.auth_method) == (
        200, "discovering", "client_secret_basic")
    assert token_post.form == {"grant_type": "client_credentials"}
    assert [(r.status, r.client_id) for r in server.resource_requests] == [(200, "discovering")]
    assert auth.token_url == server.token_url
    assert auth.metadata.issuer == server.url
    assert auth.metadata.auth_methods == tuple(server.metadata()[
        "token_endpoint_auth_methods_supported"])


@pytest.mark.parametrize("library", ["requests", "httpx", "httpx2"])
def test_authlib_server(library: str) -> None:
    with AuthlibServer() as server:
        auth = authlib_auth(server, library)
        try:
            assert sync_get(library, auth, server.resource_url) == 200
        finally:
            auth.close()
        check_authlib_requests(server, auth)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", BACKENDS)
@pytest.mark.parametrize("library", ["httpx", "httpx2"])
async def test_authlib_server_async(library: str) -> None:
    with AuthlibServer() as server:
        auth = authlib_auth(server, library)
        assert await async_get(library, auth, server.resource_url) == 200
        check_authlib_requests(server, auth)


def test_authlib_server_default_method() -> None:
    with AuthlibServer() as server:
        server.register("posting", method="client_secret_post", secret="a-secret")
        auth = RequestsAuth("posting", "a-secret", issuer=server.url, cache=MemoryCache())
        assert auth.get_token().access_token
        assert [r.auth_method for r in server.token_requests] == ["client_secret_post"]


# -- single flight ------------------------------------------------------------------------------


def test_one_metadata_fetch_for_32_threads(emulator: Emulator) -> None:
    client = emulator.client("rfc6749")
    emulator.reset_counters()
    cache = MemoryCache()
    auths = [RequestsAuth(client.client_id, client.client_secret, issuer=emulator.issuer,
                          cache=cache) for _ in range(THREADS)]
    slot = auths[0]._manager.metadata_slot
    assert all(auth._manager.metadata_slot is slot for auth in auths)
    results = contend(emulator, slot, [auth.get_token for auth in auths])
    assert len({token.access_token for token in results}) == 1
    assert len(emulator.received_at("metadata")) == 1
    assert len(emulator.received_at("token")) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_one_metadata_fetch_for_200_tasks(emulator: Emulator) -> None:
    client = emulator.client("rfc6749")
    emulator.reset_counters()
    auth = HttpxAuth(client.client_id, client.client_secret, issuer=emulator.issuer,
                     cache=MemoryCache())
    async with httpx.AsyncClient(auth=auth, timeout=20) as http:
        url = emulator.resource_url("rfc6749")

        async def get() -> int:
            return int((await http.get(url)).status_code)

        results = await acontend(emulator, auth._manager.metadata_slot, [get] * TASKS)
    assert results == [200] * TASKS
    assert len(emulator.received_at("metadata")) == 1
    assert len(emulator.received_at("token")) == 1


def test_sync_use_in_the_thread_of_a_loop_whose_task_is_discovering(emulator: Emulator) -> None:
    """As for tokens (test_loopback): sync code on an event loop's thread while a task of
    that loop owns the metadata flight must not wait for it (``Waited.WOULD_DEADLOCK``), but
    fetch the metadata itself. The task's metadata request is held at a gate for as long as
    the sync call lasts: the sync call can only return with metadata it fetched itself."""
    client = emulator.client("rfc6749")
    emulator.reset_counters()
    auth = HttpxAuth(client.client_id, client.client_secret, issuer=emulator.issuer,
                     cache=MemoryCache())
    tokens = sync_use_while_its_task_is_held(emulator, auth, auth._manager.metadata_slot)
    assert tokens["sync"]
    assert tokens["task"]
    # The task's, held, and the sync call's, which did not wait for it.
    assert len(emulator.received_at("metadata")) == 2
    assert auth.token_url == emulator.token_url("rfc6749")
    auth.close()


# -- the command ---------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this interpreter, the package
        [sys.executable, "-m", "oauth_cc_auth", *args], capture_output=True, text=True,
        timeout=60, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_cli_discover(emulator: Emulator) -> None:
    emulator.metadata_fields["dpop_signing_alg_values_supported"] = ["ES256", "PS256"]
    try:
        done = run_cli("discover", emulator.tenant_issuer())
    finally:
        emulator.metadata_fields.clear()
    assert done.returncode == 0, done.stderr
    assert f"token endpoint: {emulator.token_url('rfc6749')}\n" in done.stdout
    assert "client authentication methods: client_secret_basic, client_secret_post" in (
        done.stdout)
    assert "DPoP signing algorithms: ES256, PS256\n" in done.stdout
    as_json = json.loads(run_cli("discover", emulator.issuer, "--json").stdout)
    assert as_json["issuer"] == emulator.issuer


def test_cli_discover_errors(emulator: Emulator) -> None:
    done = run_cli("discover", emulator.issuer + "?q=1")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1
    assert "no query or fragment" in done.stderr
    emulator.answer_next(Reply(404), Reply(404), endpoint="metadata")
    done = run_cli("discover", emulator.issuer)
    assert done.returncode == 2
    assert "no authorization server metadata" in done.stderr


def test_cli_token_with_issuer(emulator: Emulator) -> None:
    client = emulator.client("rfc6749")
    done = subprocess.run(  # noqa: S603 - this interpreter, the package
        [sys.executable, "-m", "oauth_cc_auth", "token", "--issuer", emulator.issuer,
         "--client-id", str(client.client_id)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
             "OAUTH_CC_CLIENT_SECRET": str(client.client_secret)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_a_basic_header_chosen_later_is_redacted(harness: Harness) -> None:
    harness.server.metadata_fields["token_endpoint_auth_methods_supported"] = [
        "client_secret_basic"]
    auth = harness.auth(issuer=ISSUER, token_url=None)
    assert harness.get(auth).status_code == 200
    sent = harness.server.received_at("token")[0].headers["authorization"]
    credentials = sent.partition(" ")[2]
    assert sent.startswith("Basic ")
    assert credentials not in auth._manager.redactor(f"an echo: {credentials}")


# -- presets located by issuer= --------------------------------------------------------------------

KEYCLOAK = "https://kc.example/realms/demo"
KEYCLOAK_TOKEN_PATH = "/realms/demo/protocol/openid-connect/token"


def test_a_preset_with_an_issuer_is_checked_on_the_endpoint_discovered() -> None:
    # The issuer is not a token URL: construction accepts it...
    okta = config(provider="okta", issuer="https://org.okta.com", scope="billing.read")
    # ...and the preset's checks run on the token endpoint the metadata names.
    org = read_metadata("https://org.okta.com", json.dumps({
        "issuer": "https://org.okta.com",
        "token_endpoint": "https://org.okta.com/oauth2/v1/token"}).encode(), "src")
    with pytest.raises(ConfigurationError, match=r"\(the token_endpoint in the metadata at src\)"):
        resolve(okta, org)
    custom = config(provider="okta", issuer="https://org.okta.com/oauth2/default",
                    scope="billing.read")
    server = read_metadata("https://org.okta.com/oauth2/default", json.dumps({
        "issuer": "https://org.okta.com/oauth2/default",
        "token_endpoint": "https://org.okta.com/oauth2/default/v1/token"}).encode(), "src")
    assert resolve(custom, server).client.token_url == (
        "https://org.okta.com/oauth2/default/v1/token")


def test_a_preset_found_by_its_issuer(harness: Harness) -> None:
    server = harness.server
    server.add_token_path(KEYCLOAK_TOKEN_PATH)
    server.answer_next(Reply(json={
        "issuer": KEYCLOAK,
        "token_endpoint": "https://kc.example" + KEYCLOAK_TOKEN_PATH,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
    }), endpoint="metadata")
    auth = harness.auth(provider="keycloak", issuer=KEYCLOAK, token_url=None)
    assert harness.get(auth).status_code == 200
    metadata_get, token_post, _ = server.received
    assert metadata_get.url == "https://kc.example/.well-known/oauth-authorization-server/realms/demo"
    assert token_post.url == "https://kc.example" + KEYCLOAK_TOKEN_PATH
    assert token_post.headers["authorization"].startswith("Basic ")
    assert token_post.body == b"grant_type=client_credentials"
