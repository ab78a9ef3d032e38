"""The aiohttp middleware over loopback against the emulator: reuse, expiry, revocation,
errors, single flight of 200 tasks, a cancelled fetch, redirects, bodies that cannot be
re-sent, DPoP, event loops coming and going under ``-X dev``."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

import oauth_cc_auth
from oauth_cc_auth import MemoryCache
from oauth_cc_auth.aiohttp import (
    ClientCredentialsAuth,
    TokenEndpointError,
    TokenRequestError,
    TokenResponseError,
)
from oauth_cc_auth.testing import EmulatedClient, Emulator, FakeClock
from tests._contention import acontend
from tests.test_dpop import read_proof
from tests.test_mtls import TLS_CLIENT, Pki, pki, tls_server, trusted  # noqa: F401 - fixtures

PROVIDERS = ("fcc_finance", "fincalc", "figure", "rfc6749")
DEADLINE = 20.0
T = TypeVar("T")


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(main())``, bounded by the deadline."""

    async def bounded() -> T:
        async with asyncio.timeout(DEADLINE):
            return await main()

    return asyncio.run(bounded())


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


def auth_for(emu: Emulator, provider: str, **options: Any) -> ClientCredentialsAuth:
    client = emu.client(provider)
    options = {"cache": MemoryCache(), "timeout": DEADLINE, **client.options(), **options}
    return ClientCredentialsAuth(client.client_id, client.client_secret,
                                 token_url=emu.token_url(provider), **options)


async def statuses(auth: ClientCredentialsAuth, url: str, n: int, **kwargs: Any) -> list[int]:
    async with aiohttp.ClientSession(middlewares=(auth,)) as session:
        result = []
        for _ in range(n):
            async with session.get(url, **kwargs) as response:
                await response.read()
                result.append(response.status)
        return result


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.002)  # polling the condition, under the test's deadline


@pytest.mark.parametrize("provider", PROVIDERS)
class TestEveryProvider:
    def test_requests_reuse_one_token(self, emulator: Emulator, provider: str) -> None:
        auth = auth_for(emulator, provider)
        assert run(lambda: statuses(auth, emulator.resource_url(provider), 5)) == [200] * 5
        assert emulator.token_requests[provider] == 1
        sent = emulator.received_at("resource")
        assert {r.headers["authorization"] for r in sent} == {auth.token.authorization}

    def test_expiry_refresh(self, provider: str) -> None:
        clock = FakeClock()
        with Emulator(clock=clock) as emu:
            emu.set_lifetime(provider, 600)
            auth = auth_for(emu, provider, clock=clock)
            url = emu.resource_url(provider)

            async def main() -> list[int]:
                first = await statuses(auth, url, 2)
                clock.advance(600)  # expired, for the emulator and the auth object alike
                return first + await statuses(auth, url, 2)

            assert run(main) == [200] * 4
            assert emu.token_requests[provider] == 2
            tokens = [r.headers["authorization"] for r in emu.received_at("resource")]
            # figure's answer has no expires_in: its documented hour is assumed, so the
            # expired token is sent once more, refused, and renewed.
            assert len(tokens) == (5 if provider == "figure" else 4)
            assert tokens[0] == tokens[1] != tokens[-2] == tokens[-1]

    def test_recovers_after_revocation(self, emulator: Emulator, provider: str) -> None:
        auth = auth_for(emulator, provider)
        url = emulator.resource_url(provider)

        async def main() -> list[int]:
            first = await statuses(auth, url, 1)
            emulator.revoke_all()
            return first + await statuses(auth, url, 2)

        assert run(main) == [200] * 3
        assert emulator.token_requests[provider] == 2
        sent = [r.headers["authorization"] for r in emulator.received_at("resource")]
        assert len(sent) == 4  # the refused one re-sent once
        assert sent[0] == sent[1] != sent[2] == sent[3]

    def test_wrong_credentials(self, emulator: Emulator, provider: str) -> None:
        client = emulator.client(provider)
        auth = ClientCredentialsAuth(client.client_id, "wrong-secret-0123456789",
                                     token_url=emulator.token_url(provider),
                                     cache=MemoryCache(), **client.options())
        with pytest.raises(TokenRequestError) as caught:
            run(lambda: statuses(auth, emulator.resource_url(provider), 1))
        assert isinstance(caught.value, aiohttp.ClientError)
        assert isinstance(caught.value, oauth_cc_auth.TokenRequestError)
        assert caught.value.status_code is not None
        assert 400 <= caught.value.status_code < 500
        assert "wrong-secret" not in repr(caught.value) + str(caught.value)
        assert not emulator.received_at("resource")

    def test_two_hundred_tasks_one_token_request(self, emulator: Emulator, provider: str) -> None:
        auth = auth_for(emulator, provider)
        url = emulator.resource_url(provider)

        async def main() -> list[Any]:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(middlewares=(auth,), connector=connector) as s:

                async def get() -> int:
                    async with s.get(url) as response:
                        await response.read()
                        return response.status

                return await acontend(emulator, auth._manager.slot, [get] * 200)

        assert run(main) == [200] * 200
        assert emulator.token_requests[provider] == 1


def test_per_request_middleware(emulator: Emulator) -> None:
    auth = auth_for(emulator, "rfc6749")
    url = emulator.resource_url("rfc6749")

    async def main() -> list[int]:
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as bare:
                first = bare.status
            async with session.get(url, middlewares=(auth,)) as authorized:
                return [first, authorized.status]

    assert run(main) == [401, 200]
    assert emulator.token_requests["rfc6749"] == 1


def test_cancelled_fetch_lets_a_waiter_take_over(emulator: Emulator) -> None:
    auth = auth_for(emulator, "rfc6749")
    url = emulator.resource_url("rfc6749")
    slot = auth._manager.slot
    first = emulator.gate(limit=DEADLINE)

    async def main() -> tuple[bool, int]:
        async with aiohttp.ClientSession(middlewares=(auth,)) as session:

            async def get() -> int:
                async with session.get(url) as response:
                    return response.status

            owner = asyncio.create_task(get())
            await until(lambda: first.arrived == 1)  # the owner's token request is held
            waiter = asyncio.create_task(get())
            await until(lambda: slot.statistics().waiters == 1)
            second = emulator.gate(limit=DEADLINE)  # the next token request passes
            second.open()
            owner.cancel()
            status = await waiter
            # The waiter's own token request was answered while the owner's was held.
            assert first.waiting == 1
            first.open()
            try:
                await owner
            except asyncio.CancelledError:
                return True, status
            return False, status

    assert run(main) == (True, 200)
    assert emulator.token_requests["rfc6749"] == 2


class _Sites:
    """Two loopback origins of our own: ``a`` (the API, redirecting) and ``b`` (another
    origin), each recording the requests it receives."""

    def __init__(self, b_status: int) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.b_status = b_status
        self.urls: dict[str, str] = {}
        self.runners: list[web.AppRunner] = []

    async def __aenter__(self) -> _Sites:
        for name in ("a", "b"):
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handler(name))
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.runners.append(runner)
            port = runner.addresses[0][1]
            self.urls[name] = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for runner in self.runners:
            await runner.cleanup()

    def _handler(self, name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            await request.read()
            self.seen.append((name, request.path, dict(request.headers)))
            if request.path == "/to-b":
                raise web.HTTPTemporaryRedirect(self.urls["b"] + "/landed")
            if request.path == "/to-a":
                raise web.HTTPFound(self.urls["a"] + "/landed")
            if request.path == "/big":  # chunked, no Content-Length: read until the cap
                response = web.StreamResponse()
                await response.prepare(request)
                for _ in range(64):
                    await response.write(b"x" * 1024)
                return response
            if request.path == "/bad-gzip":
                return web.Response(body=b"not gzip at all", headers={
                    "Content-Encoding": "gzip", "Content-Type": "application/json"})
            if request.path == "/big-declared":
                return web.Response(body=b"{}" + b" " * 65536, content_type="application/json")
            if name == "b":
                return web.Response(status=self.b_status)
            return web.Response(text="ok")

        return handle


@pytest.mark.parametrize("b_status", [200, 401])
def test_redirect_to_another_origin_gets_no_token(emulator: Emulator, b_status: int) -> None:
    auth = auth_for(emulator, "rfc6749")

    async def main() -> tuple[list[int], _Sites]:
        async with _Sites(b_status) as sites:
            result = []
            async with aiohttp.ClientSession(middlewares=(auth,)) as session:
                for path in ("/to-b", "/to-a", "/to-b"):
                    async with session.get(sites.urls["a"] + path) as response:
                        result.append(response.status)
            return result, sites

    result, sites = run(main)
    assert result == [b_status, 200, b_status]
    authorization = auth.token.authorization
    hops = [(name, path, headers.get("Authorization")) for name, path, headers in sites.seen]
    assert hops == [
        ("a", "/to-b", authorization), ("b", "/landed", None),
        ("a", "/to-a", authorization), ("a", "/landed", authorization),
        ("a", "/to-b", authorization), ("b", "/landed", None),
    ]
    # A 401 from the other origin renews nothing.
    assert emulator.token_requests["rfc6749"] == 1


def test_body_that_cannot_be_replayed_is_not_re_sent(emulator: Emulator) -> None:
    auth = auth_for(emulator, "rfc6749")
    url = emulator.resource_url("rfc6749")

    async def chunks() -> AsyncIterator[bytes]:
        yield b"pay"
        yield b"load"

    async def main() -> list[int]:
        async with aiohttp.ClientSession(middlewares=(auth,)) as session:
            result = []
            async with session.post(url, data=b"first") as response:
                result.append(response.status)
            emulator.revoke_all()
            async with session.post(url, data=chunks(),
                                    headers={"Content-Length": "7"}) as response:
                result.append(response.status)
            refused = auth.token
            async with session.post(url, data=b"bytes") as response:
                result.append(response.status)
            assert refused is not auth.token  # invalidated by the 401 not re-sent
            return result

    assert run(main) == [200, 401, 200]
    sent = emulator.received_at("resource")
    assert [r.body for r in sent] == [b"first", b"payload", b"bytes"]
    assert emulator.token_requests["rfc6749"] == 2


def test_bytes_body_is_re_sent_after_a_401(emulator: Emulator) -> None:
    auth = auth_for(emulator, "rfc6749")
    url = emulator.resource_url("rfc6749")

    async def main() -> list[int]:
        async with aiohttp.ClientSession(middlewares=(auth,)) as session:
            result = []
            for body in (b"one", b"two"):
                async with session.put(url, data=body) as response:
                    result.append(response.status)
                emulator.revoke_all()
            return result

    assert run(main) == [200, 200]
    assert [r.body for r in emulator.received_at("resource")] == [b"one", b"two", b"two"]


def test_second_401_is_returned(emulator: Emulator) -> None:
    auth = auth_for(emulator, "rfc6749")

    async def main() -> tuple[int, list[str | None]]:
        async with (
            _Sites(401) as sites,
            aiohttp.ClientSession(middlewares=(auth,)) as s,
            s.get(sites.urls["b"] + "/always-401") as response,
        ):
            return response.status, [h.get("Authorization") for _, _, h in sites.seen]

    status, sent = run(main)
    assert status == 401
    assert len(sent) == 2
    assert sent[0] != sent[1]
    assert emulator.token_requests["rfc6749"] == 2


DPOP_CLIENT = EmulatedClient("rfc6749", "dpop-client", "dpop-secret-0123456789",
                             dpop_bound=True)


def test_dpop_proofs_and_the_api_nonce(emulator: Emulator) -> None:
    emulator.register_client(DPOP_CLIENT)
    api_nonce = emulator.demand_dpop_nonce("resource")
    auth = ClientCredentialsAuth(DPOP_CLIENT.client_id, DPOP_CLIENT.client_secret,
                                 token_url=emulator.token_url("rfc6749"), cache=MemoryCache(),
                                 timeout=DEADLINE, **DPOP_CLIENT.options())
    url = emulator.resource_url("rfc6749")
    assert run(lambda: statuses(auth, url + "?page=1", 3)) == [200] * 3
    assert auth.token is not None
    assert auth.token.token_type == "DPoP"
    assert emulator.token_requests["rfc6749"] == 1
    assert emulator.dpop_refusals["use_dpop_nonce"] == 1  # one re-send, with the nonce
    assert emulator.dpop_refusals["invalid_dpop_proof"] == 0
    sent = emulator.received_at("resource")
    assert len(sent) == 4
    assert {r.headers["authorization"] for r in sent} == {auth.token.authorization}
    claims = [read_proof(r.headers["dpop"])[1] for r in sent]
    assert len({c["jti"] for c in claims}) == 4
    assert {c["htu"] for c in claims} == {url}
    assert [c.get("nonce") == api_nonce for c in claims] == [False, True, True, True]


def test_error_classes() -> None:
    assert issubclass(TokenRequestError, aiohttp.ClientError)
    assert issubclass(TokenRequestError, oauth_cc_auth.TokenRequestError)
    assert issubclass(TokenResponseError, aiohttp.ClientError)
    assert issubclass(TokenResponseError, oauth_cc_auth.TokenResponseError)
    assert issubclass(TokenEndpointError, aiohttp.ClientConnectionError)
    assert issubclass(TokenEndpointError, oauth_cc_auth.TokenEndpointError)


def test_unreachable_endpoint_is_token_endpoint_error(emulator: Emulator) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    auth = ClientCredentialsAuth("c", "s", token_url=f"http://127.0.0.1:{port}/token",
                                 cache=MemoryCache(), max_retries=0, timeout=DEADLINE)
    with pytest.raises(TokenEndpointError) as caught:
        run(lambda: statuses(auth, emulator.resource_url("rfc6749"), 1))
    assert isinstance(caught.value, aiohttp.ClientConnectionError)


def test_not_a_token_is_token_response_error(emulator: Emulator) -> None:
    # The resource URL answers 401 to a POST without a token: not a 2xx. Site a's 200
    # "ok" is not JSON: a TokenResponseError.
    async def main() -> None:
        async with _Sites(200) as sites:
            auth = ClientCredentialsAuth("c", "s", token_url=sites.urls["a"] + "/token",
                                         cache=MemoryCache(), max_retries=0)
            await statuses(auth, sites.urls["a"] + "/api", 1)

    with pytest.raises(TokenResponseError) as caught:
        run(main)
    assert isinstance(caught.value, aiohttp.ClientError)


def test_token_requests_bypass_the_middleware_and_session_settings(emulator: Emulator) -> None:
    auth = auth_for(emulator, "rfc6749")

    async def main() -> int:
        # A session given for token requests, carrying the auth object itself and
        # raise_for_status: neither applies to token requests.
        async with aiohttp.ClientSession(middlewares=(auth,), raise_for_status=True) as own:
            auth._session = own
            async with own.get(emulator.resource_url("rfc6749")) as response:
                return response.status

    assert run(main) == 200
    assert emulator.token_requests["rfc6749"] == 1
    assert "authorization" not in emulator.received_at("token")[0].headers


def test_aclose_closes_the_token_session(emulator: Emulator) -> None:
    auth = auth_for(emulator, "rfc6749")
    url = emulator.resource_url("rfc6749")

    async def main() -> tuple[bool, int]:
        await statuses(auth, url, 1)
        session = next(iter(auth._sessions.values())).session
        await auth.aclose()
        closed = session.closed and not auth._sessions
        auth._manager.slot.invalidate(auth.token)  # the next request needs a token again
        after = await statuses(auth, url, 1)
        await auth.aclose()
        return closed, after[0]

    assert run(main) == (True, 200)
    assert emulator.token_requests["rfc6749"] == 2


def test_a_loop_closes_its_token_session(emulator: Emulator) -> None:
    auth = auth_for(emulator, "rfc6749")
    url = emulator.resource_url("rfc6749")
    sessions: list[aiohttp.ClientSession] = []

    async def main() -> None:
        auth._manager.slot.invalidate(auth.token) if auth.token else None
        await statuses(auth, url, 1)
        sessions.extend(record.session for record in auth._sessions.values())

    run(main)
    run(main)
    assert len(sessions) == 2
    assert sessions[0] is not sessions[1]
    assert all(session.closed for session in sessions)
    assert not auth._sessions


#: Runs under -X dev with ResourceWarnings as errors: one auth object, LOOPS event loops one
#: after another, each fetching a token (the clock moves past its expiry between loops).
LOOPS_SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, json, sys

    import aiohttp

    from oauth_cc_auth import MemoryCache
    from oauth_cc_auth.aiohttp import ClientCredentialsAuth
    from oauth_cc_auth.testing import Emulator, FakeClock

    LOOPS = int(sys.argv[1])
    clock = FakeClock()
    statuses = []
    with Emulator(clock=clock) as emu:
        client = emu.client("rfc6749")
        emu.set_lifetime("rfc6749", 600)
        auth = ClientCredentialsAuth(client.client_id, client.client_secret,
                                     token_url=emu.token_url("rfc6749"), cache=MemoryCache(),
                                     clock=clock)

        async def one():
            clock.advance(600)
            async with aiohttp.ClientSession(middlewares=(auth,)) as session:
                for _ in range(2):
                    async with session.get(emu.resource_url("rfc6749")) as response:
                        statuses.append(response.status)

        for _ in range(LOOPS):
            asyncio.run(one())
            gc.collect()
        # A loop closed without shutting its async generators down: its session is
        # forgotten by the next loop's token request.
        loop = asyncio.new_event_loop()
        loop.run_until_complete(one())
        loop.close()
        asyncio.run(one())
        gc.collect()
        token_requests = emu.token_requests["rfc6749"]
    print(json.dumps({"statuses": statuses, "token_requests": token_requests}))
    """
)


def test_event_loops_leave_nothing_unclosed() -> None:
    loops = 5
    result = subprocess.run(  # noqa: S603 - this interpreter, a script of ours
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", LOOPS_SCRIPT,
         str(loops)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Unclosed" not in result.stderr, result.stderr
    assert "ResourceWarning" not in result.stderr, result.stderr
    assert "Exception ignored" not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    assert report == {"statuses": [200] * 2 * (loops + 2), "token_requests": loops + 2}


def test_import_pulls_in_no_other_http_library() -> None:
    code = (
        "import sys, oauth_cc_auth.aiohttp\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('requests', 'httpx', 'httpx2')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603


def test_mutual_tls_presents_the_certificate(
    tls_server: Emulator, trusted: Pki  # noqa: F811 - test_mtls's fixtures
) -> None:
    auth = ClientCredentialsAuth(TLS_CLIENT, token_url=tls_server.token_url("rfc6749"),
                                 auth_method="tls_client_auth", cert=trusted.combined,
                                 cache=MemoryCache(), timeout=DEADLINE)
    context = ssl.create_default_context(cafile=trusted.ca_file)
    context.load_cert_chain(auth.cert)  # type: ignore[arg-type]

    async def main() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(middlewares=(auth,)) as session,
            session.get(f"{tls_server.url}/api", ssl=context) as response,
        ):
            return response.status, await response.json()

    status, body = run(main)
    assert status == 200
    assert body["client_id"] == TLS_CLIENT
    assert body["cnf"] == {"x5t#S256": auth._config.authentication.certificate.thumbprint}
    (sent,) = tls_server.received_at("token")
    assert "client_secret" not in sent.body.decode()


def test_from_env(emulator: Emulator) -> None:
    client = emulator.client("fcc_finance")
    auth = ClientCredentialsAuth.from_env({
        "OAUTH_CC_PROVIDER": "fcc_finance", "OAUTH_CC_CLIENT_ID": str(client.client_id),
        "OAUTH_CC_CLIENT_SECRET": str(client.client_secret),
        "OAUTH_CC_TOKEN_URL": emulator.token_url("fcc_finance"),
    }, cache=MemoryCache())
    assert run(lambda: statuses(auth, emulator.resource_url("fcc_finance"), 2)) == [200, 200]
    assert "fcc-secret" not in repr(auth)


@pytest.mark.parametrize("path", ["/big", "/big-declared"])
def test_an_answer_over_the_cap_is_not_read(path: str) -> None:
    async def main() -> None:
        async with _Sites(200) as sites:
            auth = ClientCredentialsAuth("c", "s", token_url=sites.urls["a"] + path,
                                         cache=MemoryCache(), max_retries=0,
                                         max_response_bytes=4096)
            await auth.aget_token()

    with pytest.raises(TokenResponseError, match=r"4096|large|bytes"):
        run(main)


def test_the_whole_token_request_is_bounded_by_timeout(emulator: Emulator) -> None:
    gate = emulator.gate(limit=DEADLINE)
    auth = auth_for(emulator, "rfc6749", timeout=0.3, max_retries=0)

    async def main() -> None:
        try:
            await auth.aget_token()
        finally:
            gate.open()

    with pytest.raises(TokenEndpointError, match="timeout"):
        run(main)
    assert gate.arrived == 1


def test_an_undecodable_answer_is_token_response_error() -> None:
    async def main() -> None:
        async with _Sites(200) as sites:
            auth = ClientCredentialsAuth("c", "s", token_url=sites.urls["a"] + "/bad-gzip",
                                         cache=MemoryCache(), max_retries=0)
            await auth.aget_token()

    with pytest.raises(TokenResponseError):
        run(main)


def test_a_storm_of_401s_makes_one_token_request(emulator: Emulator) -> None:
    auth = auth_for(emulator, "rfc6749")
    url = emulator.resource_url("rfc6749")

    async def main() -> list[int]:
        async with aiohttp.ClientSession(middlewares=(auth,)) as session:

            async def get() -> int:
                async with session.get(url) as response:
                    return response.status

            first = [await get()]
            emulator.revoke_all()
            return first + list(await asyncio.gather(*[get() for _ in range(20)]))

    assert run(main) == [200] * 21
    assert emulator.token_requests["rfc6749"] == 2


def test_a_shared_file_cache(emulator: Emulator, tmp_path: Any) -> None:
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o700)
    url = emulator.resource_url("rfc6749")
    first = auth_for(emulator, "rfc6749", cache=f"file://{directory}")
    second = auth_for(emulator, "rfc6749", cache=f"file://{directory}")

    async def main() -> list[int]:
        try:
            return await statuses(first, url, 1) + await statuses(second, url, 1)
        finally:
            await first.aclose()
            await second.aclose()

    assert run(main) == [200, 200]
    assert emulator.token_requests["rfc6749"] == 1
