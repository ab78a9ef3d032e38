"""The niquests adapter over loopback against the emulator: ``ClientCredentialsAuth`` on a
``niquests.Session`` (threads), ``AsyncClientCredentialsAuth`` on a ``niquests.AsyncSession``
(asyncio tasks), for every seed provider.

Callers are made to overlap, never assumed to: the token request is held at the emulator's
gate until the slot counts every other caller waiting for it. Every wait has a deadline.
"""

from __future__ import annotations

import inspect
import io
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import anyio
import niquests
import niquests.auth
import pytest
from joserfc.jwk import ECKey

import oauth_cc_auth
from oauth_cc_auth import MemoryCache
from oauth_cc_auth._slots import TokenSlot
from oauth_cc_auth.niquests import (
    AsyncClientCredentialsAuth,
    ClientCredentialsAuth,
    TokenEndpointError,
    TokenRequestError,
)
from oauth_cc_auth.testing import EmulatedClient, Emulator, FakeClock, Gate, Reply
from tests import test_limits, test_mtls
from tests._contention import DEADLINE, acontend, contend
from tests.test_dpop import ath, read_proof
from tests.test_limits import RawServer
from tests.test_mtls import TLS_CLIENT, Pki

PROVIDERS = ["fcc_finance", "fincalc", "figure", "rfc6749"]
MODES = ["sync", "async"]
THREADS = 32
TASKS = 200
# Fixtures of other test modules: the dripping/oversized token endpoint, mutual TLS.
raw = test_limits.raw
pki, trusted, tls_server = test_mtls.pki, test_mtls.trusted, test_mtls.tls_server
DPOP_CLIENT = EmulatedClient("rfc6749", "dpop-client", "dpop-secret-0123456789",
                             dpop_bound=True)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        emu.register_client(DPOP_CLIENT)
        yield emu


def make_auth(emulator: Emulator, provider: str, mode: str, client: EmulatedClient | None = None,
              **options: Any) -> Any:
    client = client or emulator.client(provider)
    cls = ClientCredentialsAuth if mode == "sync" else AsyncClientCredentialsAuth
    options = {"cache": MemoryCache(), "timeout": DEADLINE, **client.options(), **options}
    return cls(client.client_id, client.client_secret,
               token_url=emulator.token_url(client.provider), **options)


def run(mode: str, auth: Any, calls: Callable[[Any], Any]) -> Any:
    """*calls* (a function of a session) with a ``Session`` (sync) or an ``AsyncSession``
    (async, awaited on a new asyncio loop, within the deadline), *auth* as its auth."""
    if mode == "sync":
        with niquests.Session() as session:
            session.auth = auth
            return calls(session)

    async def main() -> Any:
        with anyio.fail_after(DEADLINE):
            async with niquests.AsyncSession() as session:
                session.auth = auth
                return await calls(session)

    return anyio.run(main, backend="asyncio")


def gets(url: str, n: int, method: str = "GET", **kwargs: Any) -> Callable[[Any], Any]:
    """*n* requests to *url*, one after the other: their responses."""

    def sync(session: niquests.Session) -> list[niquests.Response]:
        return [session.request(method, url, timeout=DEADLINE, **kwargs) for _ in range(n)]

    async def asynchronous(session: niquests.AsyncSession) -> list[niquests.Response]:
        return [await session.request(method, url, timeout=DEADLINE, **kwargs)
                for _ in range(n)]

    def either(session: Any) -> Any:
        return (asynchronous if isinstance(session, niquests.AsyncSession) else sync)(session)

    return either


def statuses(responses: Sequence[niquests.Response]) -> list[int]:
    return [int(r.status_code or 0) for r in responses]


def authorizations(emulator: Emulator) -> list[str | None]:
    return [r.headers.get("authorization") for r in emulator.received_at("resource")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
class TestEveryProvider:
    def test_reuse_expiry_refresh_and_recovery_after_revocation(
        self, emulator: Emulator, provider: str, mode: str
    ) -> None:
        clock = FakeClock()
        auth = make_auth(emulator, provider, mode, clock=clock)
        url = emulator.resource_url(provider)
        assert statuses(run(mode, auth, gets(url, 3))) == [200] * 3
        assert emulator.token_requests[provider] == 1
        first = auth.token
        assert set(authorizations(emulator)) == {first.authorization}

        clock.advance(10 ** 6)  # long expired, whatever the provider's lifetime
        assert statuses(run(mode, auth, gets(url, 2))) == [200] * 2
        assert emulator.token_requests[provider] == 2
        assert auth.token.access_token != first.access_token

        emulator.revoke_all()
        body = b'{"a": 1}'
        responses = run(mode, auth, gets(url, 1, "POST", data=body))
        assert statuses(responses) == [200]
        assert statuses(responses[0].history) == [401]
        assert emulator.token_requests[provider] == 3
        assert [r.body for r in emulator.received_at("resource")][-2:] == [body, body]
        assert authorizations(emulator)[-1] == auth.token.authorization
        assert authorizations(emulator)[-2] != auth.token.authorization

    def test_wrong_credentials(self, emulator: Emulator, provider: str, mode: str) -> None:
        good = emulator.client(provider)
        bad = EmulatedClient(provider, good.client_id, "not-the-secret", scope=good.scope,
                             extra=good.extra)
        auth = make_auth(emulator, provider, mode, client=bad)
        with pytest.raises(TokenRequestError) as caught:
            run(mode, auth, gets(emulator.resource_url(provider), 1))
        error = caught.value
        assert isinstance(error, niquests.RequestException)
        assert isinstance(error, oauth_cc_auth.TokenRequestError)
        assert error.status_code is not None
        assert 400 <= error.status_code < 500
        assert "not-the-secret" not in str(error)
        assert isinstance(error.request, niquests.PreparedRequest)  # the API request
        assert error.request.url == emulator.resource_url(provider)
        assert emulator.received_at("resource") == []

    def test_cross_origin_redirect_gets_no_token(
        self, emulator: Emulator, provider: str, mode: str
    ) -> None:
        auth = make_auth(emulator, provider, mode)
        with Emulator() as other:
            elsewhere = other.resource_url(provider)
            emulator.answer_next(Reply(302, headers={"Location": elsewhere}),
                                 endpoint="resource")
            responses = run(mode, auth, gets(emulator.resource_url(provider), 1))
            # The other origin's 401 is returned as it is: no token, no retry, no renewal.
            assert statuses(responses) == [401]
            assert statuses(responses[0].history) == [302]
            assert [r.headers.get("authorization") for r in other.received_at("resource")] \
                == [None]
            assert other.received_at("token") == []
        assert emulator.token_requests[provider] == 1
        assert authorizations(emulator) == [auth.token.authorization]

    def test_a_generator_body_is_not_sent_again(
        self, emulator: Emulator, provider: str, mode: str
    ) -> None:
        auth = make_auth(emulator, provider, mode)
        url = emulator.resource_url(provider)
        assert statuses(run(mode, auth, gets(url, 1))) == [200]
        emulator.revoke_all()

        def sync(session: niquests.Session) -> niquests.Response:
            return session.post(url, data=(part for part in (b"a", b"b")), timeout=DEADLINE)

        async def asynchronous(session: niquests.AsyncSession) -> niquests.Response:
            async def parts() -> Any:
                yield b"a"
                yield b"b"

            return await session.post(url, data=parts(), timeout=DEADLINE)

        response = run(mode, auth, sync if mode == "sync" else asynchronous)
        assert response.status_code == 401
        assert response.history == []
        assert [r.body for r in emulator.received_at("resource")] == [b"", b"ab"]
        assert emulator.token_requests[provider] == 1
        # The refused token was dropped: the next request fetches a new one.
        assert statuses(run(mode, auth, gets(url, 1))) == [200]
        assert emulator.token_requests[provider] == 2


#: 200 tasks over loopback take most of a second each: rfc6749's in the default run, the other
#: providers' in the slow one.
CONTENTION = [
    pytest.param(provider, mode, marks=pytest.mark.slow
                 if mode == "async" and provider != "rfc6749" else ())
    for provider in PROVIDERS for mode in MODES
]


@pytest.mark.parametrize(("provider", "mode"), CONTENTION)
def test_one_token_request_for_every_caller(emulator: Emulator, provider: str, mode: str) -> None:
    auth = make_auth(emulator, provider, mode)
    url = emulator.resource_url(provider)
    if mode == "sync":
        results = contend(emulator, auth._manager.slot,
                          [lambda: one_sync_get(auth, url)] * THREADS)
        assert results == [200] * THREADS
    else:
        results = anyio.run(acontend_gets, emulator, auth, url, TASKS, backend="asyncio")
        assert results == [200] * TASKS
    assert emulator.token_requests[provider] == 1
    assert set(authorizations(emulator)) == {auth.token.authorization}


# -- single flight helpers --------------------------------------------------------------------


def one_sync_get(auth: ClientCredentialsAuth, url: str) -> int:
    with niquests.Session() as session:
        session.auth = auth
        return int(session.get(url, timeout=DEADLINE).status_code or 0)


async def acontend_gets(emulator: Emulator, auth: AsyncClientCredentialsAuth, url: str,
                        n: int) -> list[Any]:
    async with niquests.AsyncSession(pool_maxsize=n) as session:
        session.auth = auth

        async def get() -> int:
            return int((await session.get(url, timeout=DEADLINE)).status_code or 0)

        return await acontend(emulator, auth._manager.slot, [get] * n)


# -- errors, cancellation, the token session -------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("mode", MODES)
def test_unreachable_endpoint_is_also_a_connection_error(mode: str) -> None:
    cls = ClientCredentialsAuth if mode == "sync" else AsyncClientCredentialsAuth
    auth = cls("id", "secret", token_url=f"http://127.0.0.1:{_closed_port()}/token",
               cache=MemoryCache(), max_retries=0, timeout=DEADLINE)
    with pytest.raises(TokenEndpointError) as caught:
        run(mode, auth, gets("http://127.0.0.1:9/never", 1))
    assert isinstance(caught.value, niquests.ConnectionError)
    assert isinstance(caught.value, oauth_cc_auth.TokenEndpointError)


def test_cancelled_fetch_lets_a_waiter_take_over(emulator: Emulator) -> None:
    auth = make_auth(emulator, "rfc6749", "async")
    slot: TokenSlot = auth._manager.slot
    url = emulator.resource_url("rfc6749")
    first = emulator.gate(limit=DEADLINE)
    got: list[int] = []

    async def until(condition: Callable[[], bool]) -> None:
        while not condition():
            await anyio.sleep(0.002)  # polling the condition

    async def main() -> Gate:
        owner = anyio.CancelScope()
        with anyio.fail_after(DEADLINE):
            async with niquests.AsyncSession() as session:
                session.auth = auth

                async def get(scope: anyio.CancelScope | None = None) -> None:
                    with scope or anyio.CancelScope():
                        got.append(int((await session.get(url, timeout=DEADLINE))
                                       .status_code or 0))

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(get, owner)
                    await until(lambda: first.arrived == 1)  # the owner's request is held
                    tasks.start_soon(get)
                    await until(lambda: slot.statistics().waiters == 1)
                    second = emulator.gate(limit=DEADLINE)
                    second.open()
                    owner.cancel()
                assert owner.cancelled_caught
                assert got == [200]
                assert first.waiting == 1
                first.open()
                return second

    second = anyio.run(main, backend="asyncio")
    assert second.arrived == 1
    assert len(emulator.received_at("token")) == 2
    assert authorizations(emulator) == [auth.token.authorization]


def test_token_requests_never_use_the_api_session(emulator: Emulator) -> None:
    # The API session's hooks, headers and auth never see the token exchange.
    auth = make_auth(emulator, "fcc_finance", "sync")
    seen: list[str] = []
    with niquests.Session() as session:
        session.auth = auth
        session.headers["X-Api-Only"] = "yes"
        session.hooks["response"].append(lambda r, **kwargs: seen.append(r.url))
        response = session.get(emulator.resource_url("fcc_finance"), timeout=DEADLINE)
    assert response.status_code == 200
    assert seen == [emulator.resource_url("fcc_finance")]
    assert "x-api-only" not in emulator.received_at("token")[0].headers
    assert "authorization" not in emulator.received_at("token")[0].headers


def test_a_session_given_for_token_requests_is_used(emulator: Emulator) -> None:
    token_session = niquests.Session()
    token_session.headers["X-Token-Session"] = "1"
    with token_session:
        auth = make_auth(emulator, "rfc6749", "sync", session=token_session)
        assert auth.get_token().access_token
    assert emulator.received_at("token")[0].headers.get("x-token-session") == "1"


def test_sync_auth_on_an_async_session_is_refused_at_renewal(emulator: Emulator) -> None:
    auth = make_auth(emulator, "rfc6749", "sync")
    auth.get_token()
    emulator.revoke_all()

    async def main() -> None:
        async with niquests.AsyncSession() as session:
            with pytest.raises(TypeError, match="AsyncClientCredentialsAuth"):
                await session.get(emulator.resource_url("rfc6749"), auth=auth,
                                  timeout=DEADLINE)

    anyio.run(main, backend="asyncio")


@pytest.mark.parametrize("mode", MODES)
def test_a_file_body_is_rewound_and_sent_again(emulator: Emulator, mode: str) -> None:
    auth = make_auth(emulator, "rfc6749", mode)
    url = emulator.resource_url("rfc6749")
    assert statuses(run(mode, auth, gets(url, 1))) == [200]
    emulator.revoke_all()
    body = io.BytesIO(b"file content")
    responses = run(mode, auth, gets(url, 1, "POST", data=body))
    assert statuses(responses) == [200]
    assert statuses(responses[0].history) == [401]
    assert [r.body for r in emulator.received_at("resource")][1:] == [b"file content"] * 2


@pytest.mark.parametrize("mode", MODES)
def test_a_same_origin_redirect_after_renewal_carries_the_new_token(
    emulator: Emulator, mode: str
) -> None:
    auth = make_auth(emulator, "rfc6749", mode)
    url = emulator.resource_url("rfc6749")
    # A 401 (renewal), then the re-sent request redirected within the origin.
    emulator.answer_next(Reply(401), Reply(302, headers={"Location": url + "?moved=1"}),
                         endpoint="resource")
    responses = run(mode, auth, gets(url, 1))
    assert statuses(responses) == [200]
    assert emulator.token_requests["rfc6749"] == 2
    sent = authorizations(emulator)
    assert sent[1:] == [auth.token.authorization] * 2
    assert sent[0] != auth.token.authorization
    assert emulator.received_at("resource")[-1].url.endswith("?moved=1")


@pytest.mark.parametrize("mode", MODES)
def test_a_second_401_is_returned_as_it_is(emulator: Emulator, mode: str) -> None:
    auth = make_auth(emulator, "rfc6749", mode)
    emulator.answer_next(Reply(401), Reply(401), Reply(401), endpoint="resource")
    responses = run(mode, auth, gets(emulator.resource_url("rfc6749"), 1))
    assert statuses(responses) == [401]
    assert statuses(responses[0].history) == [401]
    assert emulator.token_requests["rfc6749"] == 2  # one renewal, never a loop
    assert len(emulator.received_at("resource")) == 2


@pytest.mark.parametrize("mode", MODES)
def test_from_env(emulator: Emulator, mode: str) -> None:
    client = emulator.client("fincalc")
    environ = {
        "OAUTH_CC_PROVIDER": "fincalc",
        "OAUTH_CC_CLIENT_ID": str(client.client_id),
        "OAUTH_CC_CLIENT_SECRET": str(client.client_secret),
        "OAUTH_CC_TOKEN_URL": emulator.token_url("fincalc"),
        "OAUTH_CC_SCOPE": str(client.scope),
        "OAUTH_CC_EXTRA_EMAIL_ADDRESS": client.extra["email_address"],
    }
    cls = ClientCredentialsAuth if mode == "sync" else AsyncClientCredentialsAuth
    auth = cls.from_env(environ, cache=MemoryCache())
    assert statuses(run(mode, auth, gets(emulator.resource_url("fincalc"), 2))) == [200] * 2
    assert emulator.token_requests["fincalc"] == 1


@pytest.mark.parametrize("mode", MODES)
def test_private_key_jwt(emulator: Emulator, mode: str) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    emulator.register_client(EmulatedClient("rfc6749", "keyed-client",
                                            jwks={"keys": [key.as_dict(private=False)]}))
    cls = ClientCredentialsAuth if mode == "sync" else AsyncClientCredentialsAuth
    auth = cls("keyed-client", None, token_url=emulator.token_url("rfc6749"),
               auth_method="private_key_jwt", private_key=key.as_dict(private=True),
               private_key_id="k1", cache=MemoryCache(), timeout=DEADLINE)
    assert statuses(run(mode, auth, gets(emulator.resource_url("rfc6749"), 2))) == [200] * 2
    assert emulator.token_requests["rfc6749"] == 1
    assert "client_assertion=" in emulator.received_at("token")[0].body.decode()


@pytest.mark.parametrize("mode", MODES)
def test_mtls_the_token_session_presents_the_certificate(
    mode: str, tls_server: Emulator, trusted: Pki
) -> None:
    cls = ClientCredentialsAuth if mode == "sync" else AsyncClientCredentialsAuth
    auth = cls(TLS_CLIENT, None, token_url=tls_server.token_url("rfc6749"),
               auth_method="tls_client_auth", cert=trusted.combined, cache=MemoryCache(),
               timeout=DEADLINE)
    api = f"{tls_server.url}/api"
    if mode == "sync":
        with niquests.Session() as session:
            session.auth, session.verify, session.cert = auth, trusted.ca_file, auth.cert
            response = session.get(api, timeout=DEADLINE)
        auth.close()
    else:

        async def main() -> niquests.Response:
            async with niquests.AsyncSession() as session:
                session.auth, session.verify, session.cert = auth, trusted.ca_file, auth.cert
                return await session.get(api, timeout=DEADLINE)

        response = anyio.run(main, backend="asyncio")
    assert response.status_code == 200
    assert response.json()["client_id"] == TLS_CLIENT
    assert auth.token.access_token == "tok-1"
    (sent,) = tls_server.received_at("token")
    assert "client_secret" not in sent.body.decode()


# -- token request limits -------------------------------------------------------------------------


def get_token(mode: str, auth: Any) -> Any:
    """The token or the exception, and the seconds it took."""
    started = time.monotonic()
    try:
        if mode == "sync":
            result = auth.get_token()
        else:
            result = anyio.run(auth.aget_token, backend="asyncio")
    except Exception as exc:
        result = exc
    finally:
        auth.close()
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    ("mode", "path"),
    [("sync", "drip-headers"), ("async", "drip-headers"),
     pytest.param("sync", "drip", marks=pytest.mark.slow),
     pytest.param("async", "drip", marks=pytest.mark.slow)],
)
def test_timeout_bounds_the_whole_token_request(raw: RawServer, mode: str, path: str) -> None:
    cls = ClientCredentialsAuth if mode == "sync" else AsyncClientCredentialsAuth
    auth = cls("id", "secret", token_url=f"{raw.base}/{path}", cache=MemoryCache(),
               timeout=0.5, max_retries=0)
    error, took = get_token(mode, auth)
    assert isinstance(error, TokenEndpointError), error
    assert "timeout=0.5" in str(error)
    assert took < 3.0  # the server drips for ever: bounded by the deadline, not per read


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", ["big", "big?length=1", "endless"])
def test_an_answer_larger_than_the_cap_is_not_read(raw: RawServer, mode: str,
                                                   path: str) -> None:
    cls = ClientCredentialsAuth if mode == "sync" else AsyncClientCredentialsAuth
    auth = cls("id", "secret", token_url=f"{raw.base}/{path}", cache=MemoryCache(),
               timeout=DEADLINE, max_retries=0, max_response_bytes=64 * 1024)
    error, took = get_token(mode, auth)
    assert isinstance(error, oauth_cc_auth.TokenResponseError), error
    assert isinstance(error, niquests.RequestException)
    assert "max_response_bytes" in str(error)
    assert took < DEADLINE


# -- DPoP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
class TestDPoP:
    def test_proofs_verified_by_the_emulator(self, emulator: Emulator, mode: str) -> None:
        auth = make_auth(emulator, "rfc6749", mode, client=DPOP_CLIENT)
        url = emulator.resource_url("rfc6749")
        assert statuses(run(mode, auth, gets(url + "?page=1", 5))) == [200] * 5
        assert emulator.token_requests["rfc6749"] == 1
        assert auth.token.token_type == "DPoP"
        sent = emulator.received_at("resource")
        claims = [read_proof(r.headers["dpop"])[1] for r in sent]
        assert len({c["jti"] for c in claims}) == 5
        assert {c["ath"] for c in claims} == {ath(auth.token.access_token)}
        assert {c["htu"] for c in claims} == {url}
        assert {r.headers["authorization"] for r in sent} == {f"DPoP {auth.token.access_token}"}
        assert not emulator.dpop_refusals

    def test_a_nonce_demanded_by_the_api_costs_one_re_send(
        self, emulator: Emulator, mode: str
    ) -> None:
        auth = make_auth(emulator, "rfc6749", mode, client=DPOP_CLIENT)
        url = emulator.resource_url("rfc6749")
        nonce = emulator.demand_dpop_nonce("resource")
        responses = run(mode, auth, gets(url, 3, "POST", data=b"payload"))
        assert statuses(responses) == [200] * 3
        assert statuses(responses[0].history) == [401]
        assert emulator.dpop_refusals["use_dpop_nonce"] == 1
        assert emulator.dpop_refusals["invalid_dpop_proof"] == 0
        sent = emulator.received_at("resource")
        assert len(sent) == 4
        assert [r.body for r in sent] == [b"payload"] * 4
        assert [read_proof(r.headers["dpop"])[1].get("nonce") for r in sent][1:] == [nonce] * 3
        assert emulator.token_requests["rfc6749"] == 1  # a re-send, not a renewal

    def test_renewal_after_revocation(self, emulator: Emulator, mode: str) -> None:
        auth = make_auth(emulator, "rfc6749", mode, client=DPOP_CLIENT)
        url = emulator.resource_url("rfc6749")
        assert statuses(run(mode, auth, gets(url, 1))) == [200]
        emulator.revoke_all()
        responses = run(mode, auth, gets(url, 1))
        assert statuses(responses) == [200]
        assert statuses(responses[0].history) == [401]
        assert emulator.token_requests["rfc6749"] == 2
        assert emulator.dpop_refusals["invalid_dpop_proof"] == 0


# -- processes and loops -------------------------------------------------------------------------

#: Runs in a child interpreter under -X dev, ResourceWarnings as errors: LOOPS asyncio.run()
#: loops, each fetching a token (the previous one expired) through its own AsyncSession.
LOOPS_SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, sys
    import niquests
    from oauth_cc_auth import MemoryCache
    from oauth_cc_auth.niquests import AsyncClientCredentialsAuth
    from oauth_cc_auth.testing import Emulator, FakeClock

    LOOPS = int(sys.argv[1])
    clock = FakeClock()
    with Emulator() as emu:
        client = emu.client("fcc_finance")
        auth = AsyncClientCredentialsAuth(client.client_id, client.client_secret,
                                          token_url=emu.token_url("fcc_finance"),
                                          cache=MemoryCache(), clock=clock,
                                          **client.options())

        async def use():
            async with niquests.AsyncSession() as session:
                response = await session.get(emu.resource_url("fcc_finance"), auth=auth)
                assert response.status_code == 200, response.status_code

        for _ in range(LOOPS):
            clock.advance(10 ** 6)  # expired: every loop makes a token request of its own
            asyncio.run(use())
        gc.collect()
        assert emu.token_requests["fcc_finance"] == LOOPS, emu.token_requests
    print("ok", LOOPS)
    """
)


@pytest.mark.parametrize("loops", [3, pytest.param(50, marks=pytest.mark.slow)],
                         ids=["3-loops", "50-loops"])
def test_event_loops_leave_no_unclosed_connection(loops: int) -> None:
    command = [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", LOOPS_SCRIPT,
               str(loops)]
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        command, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["ok", str(loops)]
    assert "unclosed" not in done.stderr
    assert "ResourceWarning" not in done.stderr


def test_error_classes_and_exports() -> None:
    import oauth_cc_auth.niquests as nq

    assert nq.__all__ == ["AsyncClientCredentialsAuth", "ClientCredentialsAuth",
                          "TokenEndpointError", "TokenRequestError", "TokenResponseError"]
    assert issubclass(nq.TokenRequestError, oauth_cc_auth.TokenRequestError)
    assert issubclass(nq.TokenResponseError, oauth_cc_auth.TokenResponseError)
    assert issubclass(nq.TokenEndpointError, oauth_cc_auth.TokenEndpointError)
    assert issubclass(nq.TokenRequestError, niquests.RequestException)
    assert issubclass(nq.TokenResponseError, niquests.RequestException)
    assert issubclass(nq.TokenEndpointError, niquests.ConnectionError)
    # niquests tells an async auth from a sync one by its __call__: one class each.
    assert issubclass(nq.ClientCredentialsAuth, niquests.auth.AuthBase)
    assert issubclass(nq.AsyncClientCredentialsAuth, niquests.auth.AsyncAuthBase)
    assert not inspect.iscoroutinefunction(nq.ClientCredentialsAuth.__call__)
    assert inspect.iscoroutinefunction(nq.AsyncClientCredentialsAuth.__call__)


@pytest.mark.parametrize("mode", MODES)
def test_waiters_share_the_failure(emulator: Emulator, mode: str) -> None:
    emulator.answer_next(Reply(503))
    auth = make_auth(emulator, "rfc6749", mode, max_retries=0)
    if mode == "sync":
        results = contend(emulator, auth._manager.slot, [auth.get_token] * 8)
    else:

        async def main() -> list[Any]:
            return await acontend(emulator, auth._manager.slot, [auth.aget_token] * 8)

        results = anyio.run(main, backend="asyncio")
    assert all(isinstance(r, TokenEndpointError) for r in results), results
    assert len(emulator.received_at("token")) == 1


def test_the_sync_and_the_async_class_share_one_token(emulator: Emulator) -> None:
    # The process-wide cache (the default): one token for both classes, and for the other
    # adapters' objects with the same credentials.
    client = emulator.client("figure")
    options = {**client.options(), "token_url": emulator.token_url("figure")}
    sync = ClientCredentialsAuth(client.client_id, client.client_secret, **options)
    asynchronous = AsyncClientCredentialsAuth(client.client_id, client.client_secret, **options)
    url = emulator.resource_url("figure")
    assert statuses(run("sync", sync, gets(url, 2))) == [200] * 2
    assert statuses(run("async", asynchronous, gets(url, 2))) == [200] * 2
    assert emulator.token_requests["figure"] == 1
    # A revocation seen by one renews the token for both.
    emulator.revoke_all()
    assert statuses(run("async", asynchronous, gets(url, 1))) == [200]
    assert statuses(run("sync", sync, gets(url, 1))) == [200]
    assert emulator.token_requests["figure"] == 2
    sync.close()


def test_the_session_hooks_are_left_as_they_were(emulator: Emulator) -> None:
    auth = make_auth(emulator, "rfc6749", "sync")
    with niquests.Session() as session:
        session.auth = auth
        assert statuses(gets(emulator.resource_url("rfc6749"), 3)(session)) == [200] * 3
        assert session.hooks["response"] == []


def test_importing_the_adapter_leaves_requests_and_httpx_out() -> None:
    code = ("import oauth_cc_auth.niquests, sys; "
            "assert 'requests' not in sys.modules and 'httpx' not in sys.modules, "
            "sorted(m for m in sys.modules if m in ('requests', 'httpx'))")
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]

