"""Shared token caches: one token request for a fleet of processes, encrypted at rest, and
requests that never fail because the cache does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import redis
import requests

import oauth_cc_auth
from oauth_cc_auth import FileCache, MemoryCache, RedisCache
from oauth_cc_auth._caches import open_cache
from oauth_cc_auth._discovery import metadata_urls
from oauth_cc_auth._sealed import Sealer
from oauth_cc_auth._shared import MAX_METADATA_ENTRY_BYTES
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import Emulator
from tests.conftest import build_auth, emulated_auth
from tests.fleet_worker import Fleet, Spec
from tests.redis_server import RedisNotInstalled, RedisServer, free_port

LOOP_WORKER = Path(__file__).with_name("loop_worker.py")
PROVIDER = "fcc_finance"


@contextlib.contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own (see tests/redis_server.py), stopped afterwards."""
    try:
        server = RedisServer(directory)
    except RedisNotInstalled:
        server = None
    if server is None:
        pytest.fail("redis-server is not installed (.ci/run installs Debian's redis-server)")
    with server:
        yield server


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


def cache_url(kind: str, tmp_path: Path, redis_url: str | None, **query: Any) -> str:
    suffix = ("?" + "&".join(f"{k}={v}" for k, v in query.items())) if query else ""
    if kind == "file":
        return f"file://{tmp_path / 'cache'}{suffix}"
    assert redis_url is not None
    return redis_url + suffix


@pytest.fixture(params=["file", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """(kind, redis server or None) for each shared backend."""
    if request.param == "redis":
        with running_redis(tmp_path) as server:
            yield "redis", server
    else:
        yield "file", None


def fleet_spec(emulator: Emulator, url: str, n: int, mode: Literal["threads", "async"],
               provider: str = PROVIDER, **options: Any) -> Spec:
    """*n* threads or tasks per process, one API request each, through the cache at *url*
    (*options* over those of the emulator's client of *provider*)."""
    client = emulator.client(provider)
    return Spec(
        token_url=emulator.token_url(provider), url=emulator.resource_url(provider),
        client_id=client.client_id, client_secret=client.client_secret,
        options={**client.options(), **options}, cache=url, callers=n, mode=mode,
    )


@pytest.mark.slow
class TestFleet:
    """Many processes, one token request."""

    @pytest.mark.parametrize(
        ("processes", "n", "mode"), [(8, 16, "threads"), (4, 50, "async")],
        ids=["8-processes-x-16-threads", "4-processes-x-50-asyncio-tasks"],
    )
    def test_one_token_request_for_the_fleet(
        self, emulator: Emulator, shared: tuple[str, Any], tmp_path: Path,
        processes: int, n: int, mode: Literal["threads", "async"],
    ) -> None:
        kind, server = shared
        url = cache_url(kind, tmp_path, server and server.url)
        with Fleet(tmp_path, fleet_spec(emulator, url, n, mode), processes) as fleet:
            fleet.wait_ready()
            emulator.slow_next(1, 0.5)  # the one token request is slow: everyone arrives meanwhile
            fleet.go()
            results = fleet.wait_done()
            assert fleet.stop(wait=True) == [0] * processes
        assert results == [{"callers": n, "ok": n, "errors": {}}] * processes
        assert emulator.token_requests[PROVIDER] == 1
        assert emulator.resource_requests[PROVIDER] == processes * n

    def test_one_metadata_request_for_the_fleet(
        self, emulator: Emulator, shared: tuple[str, Any], tmp_path: Path
    ) -> None:
        kind, server = shared
        url = cache_url(kind, tmp_path, server and server.url)
        spec = fleet_spec(emulator, url, 8, "threads", "rfc6749",
                          token_url=None, issuer=emulator.issuer)
        with Fleet(tmp_path, spec, 4) as fleet:
            fleet.wait_ready()
            fleet.go()  # all at once: the first to take the lock fetches, the others wait
            results = fleet.wait_done()
            assert fleet.stop(wait=True) == [0] * 4
        assert results == [{"callers": 8, "ok": 8, "errors": {}}] * 4
        assert len(emulator.received_at("metadata")) == 1
        assert emulator.token_requests["rfc6749"] == 1

    def test_killed_lock_holder_does_not_stall_the_others(
        self, emulator: Emulator, shared: tuple[str, Any], tmp_path: Path
    ) -> None:
        kind, server = shared
        lock_timeout = 2.0
        url = cache_url(kind, tmp_path, server and server.url, lock_timeout=lock_timeout)
        emulator.slow_next(1, 60)  # the holder's token request hangs
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with Fleet(tmp_path / "a", fleet_spec(emulator, url, 1, "threads"), 1) as holder:
            holder.go()
            deadline = time.monotonic() + 30
            while emulator.token_requests[PROVIDER] < 1:  # the holder has the lock, and is fetching
                assert time.monotonic() < deadline
                time.sleep(0.01)
            with Fleet(tmp_path / "b", fleet_spec(emulator, url, 4, "threads"), 1) as waiter:
                waiter.wait_ready(max(0.0, deadline - time.monotonic()))
                waiter.go()
                # Time for the waiter to reach the holder's lock. The assertions below hold
                # whether or not it has (a dead holder's lock costs at most lock_timeout either
                # way).
                time.sleep(0.3)
                started = time.monotonic()
                holder.stop(wait=False)  # SIGKILL
                results = waiter.wait_done(timeout=60)
                elapsed = time.monotonic() - started
                assert waiter.stop(wait=True) == [0]
        assert results == [{"callers": 4, "ok": 4, "errors": {}}]
        assert elapsed < lock_timeout + 2.0
        assert emulator.token_requests[PROVIDER] == 2  # the dead holder's, and one more


class TestFallback:
    """When the shared cache fails, requests still succeed."""

    @pytest.mark.slow
    def test_redis_stopped_mid_run(self, emulator: Emulator, redis_server: RedisServer,
                                   caplog: pytest.LogCaptureFixture) -> None:
        emulator.set_lifetime(PROVIDER, 0.6)  # refreshed every 0.3 s
        auth = emulated_auth(emulator, RequestsAuth, PROVIDER,
                             cache=RedisCache(redis_server.url, socket_timeout=0.5))
        url = emulator.resource_url(PROVIDER)
        failures: list[str] = []
        before_stop = 0
        with caplog.at_level(logging.WARNING, logger="oauth_cc_auth"), requests.Session() as s:
            end = time.monotonic() + 2.0
            stopped = False
            while time.monotonic() < end:
                if not stopped and time.monotonic() > end - 1.2:
                    before_stop = emulator.token_requests[PROVIDER]
                    redis_server.stop()
                    stopped = True
                response = s.get(url, auth=auth, timeout=10)
                if response.status_code != 200:
                    failures.append(str(response.status_code))
                time.sleep(0.02)
        assert failures == []
        assert emulator.token_requests[PROVIDER] > before_stop  # refreshed without Redis
        warnings = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(warnings) == 1
        assert "using the in-process cache" in warnings[0]

    def test_unreachable_from_the_start_sync_and_async(
        self, emulator: Emulator, caplog: pytest.LogCaptureFixture
    ) -> None:
        dead = f"redis://127.0.0.1:{free_port()}/0"
        with caplog.at_level(logging.WARNING, logger="oauth_cc_auth"):
            auth = emulated_auth(emulator, HttpxAuth, PROVIDER, cache=dead)
            assert httpx.get(emulator.resource_url(PROVIDER), auth=auth).status_code == 200

            async def go() -> int:
                other = emulated_auth(emulator, HttpxAuth, PROVIDER,
                                      cache=RedisCache(dead, socket_timeout=0.5))
                other._manager.slot = MemoryCache().slot("another process")
                async with httpx.AsyncClient(auth=other) as http:
                    return (await http.get(emulator.resource_url(PROVIDER))).status_code

            assert asyncio.run(go()) == 200
        assert sum("unavailable" in r.getMessage() for r in caplog.records) == 2


class TestAtRest:
    """Entries are sealed: no plaintext token, no secret in a key, other secrets can't read."""

    def test_what_is_stored(self, emulator: Emulator, shared: tuple[str, Any],
                            tmp_path: Path) -> None:
        kind, server = shared
        url = cache_url(kind, tmp_path, server and server.url)
        client = emulator.client(PROVIDER)
        auth = emulated_auth(emulator, RequestsAuth, PROVIDER, cache=url)
        assert requests.get(emulator.resource_url(PROVIDER), auth=auth, timeout=10).ok
        token = auth.token.access_token
        key = auth._config.cache_key
        if kind == "file":
            directory = tmp_path / "cache"
            [entry] = directory.glob("*.token")
            stored = entry.read_bytes()
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700
            assert stat.S_IMODE(entry.stat().st_mode) == 0o600
            names = [p.name for p in directory.iterdir()]
        else:
            raw = redis.Redis.from_url(server.url)
            names = [k.decode() for k in raw.keys("*")]
            stored = raw.get(f"oauth-cc-auth:token:{key}")
            ttl = raw.pttl(f"oauth-cc-auth:token:{key}")
            assert 86_000_000 < ttl <= 86_400_000  # expires in Redis with the token
            raw.close()
        assert stored is not None
        assert token.encode() not in stored
        assert client.client_secret not in "".join(names)
        assert all(key in name for name in names)
        # The holder of the secret reads it back; another secret cannot.
        assert Sealer(client.client_secret, key).open(stored, 0.0, 60).access_token == token
        assert Sealer("another-secret", key).open(stored, 0.0, 60) is None
        # Nor can the entry be moved under another key.
        assert Sealer(client.client_secret, "0" * 64).open(stored, 0.0, 60) is None

    def test_a_new_process_takes_the_stored_token(
        self, emulator: Emulator, shared: tuple[str, Any], tmp_path: Path
    ) -> None:
        kind, server = shared
        url = cache_url(kind, tmp_path, server and server.url)
        first = emulated_auth(emulator, RequestsAuth, PROVIDER, cache=url)
        assert requests.get(emulator.resource_url(PROVIDER), auth=first, timeout=10).ok
        # Another process: its own memory cache, the same shared one.
        second = emulated_auth(emulator, RequestsAuth, PROVIDER, cache=open_cache(url))
        second._manager.slot = MemoryCache().slot("elsewhere")
        assert requests.get(emulator.resource_url(PROVIDER), auth=second, timeout=10).ok
        assert emulator.token_requests[PROVIDER] == 1
        assert second.token.access_token == first.token.access_token
        # A revoked token is not taken from the shared cache again: one new token for all.
        emulator.revoke_all()
        assert requests.get(emulator.resource_url(PROVIDER), auth=second, timeout=10).ok
        assert requests.get(emulator.resource_url(PROVIDER), auth=first, timeout=10).ok
        assert emulator.token_requests[PROVIDER] == 2

    def test_tampered_entry_is_ignored_and_refetched(self, emulator: Emulator,
                                                     tmp_path: Path) -> None:
        cache = FileCache(tmp_path / "cache")
        first = emulated_auth(emulator, RequestsAuth, PROVIDER, cache=cache)
        assert requests.get(emulator.resource_url(PROVIDER), auth=first, timeout=10).ok
        [entry] = (tmp_path / "cache").glob("*.token")
        blob = bytearray(entry.read_bytes())
        blob[-1] ^= 0x01
        entry.write_bytes(bytes(blob))
        second = emulated_auth(emulator, RequestsAuth, PROVIDER, cache=cache)
        second._manager.slot = MemoryCache().slot("elsewhere")
        assert requests.get(emulator.resource_url(PROVIDER), auth=second, timeout=10).ok
        assert emulator.token_requests[PROVIDER] == 2


def discovering(emulator: Emulator, cache: Any, auth_class: Any = RequestsAuth) -> Any:
    """An *auth_class* object finding the emulator's token endpoint by ``issuer=``, through
    the shared *cache*, with memory slots of its own: another process's, as far as the
    tokens and metadata it knows go."""
    client = emulator.client("rfc6749")
    auth = auth_class(client.client_id, client.client_secret, issuer=emulator.issuer,
                      cache=cache)
    memory = MemoryCache()
    auth._manager.slot = memory.slot("another process")
    auth._manager.metadata_slot = memory.metadata_slot(emulator.issuer)
    return auth


class TestSharedMetadata:
    """With ``issuer=``, the metadata is stored in the shared cache: one metadata request
    for the fleet."""

    def test_a_new_process_takes_the_stored_metadata(
        self, emulator: Emulator, shared: tuple[str, Any], tmp_path: Path
    ) -> None:
        kind, server = shared
        url = cache_url(kind, tmp_path, server and server.url)
        first = discovering(emulator, open_cache(url))
        assert first.get_token().access_token
        assert len(emulator.received_at("metadata")) == 1
        second = discovering(emulator, open_cache(url))
        assert second.get_token().access_token == first.get_token().access_token
        assert len(emulator.received_at("metadata")) == 1  # none of its own
        assert second.metadata == first.metadata
        assert second.token_url == emulator.token_url("rfc6749")

        async def go() -> str:  # the async driver too
            third = discovering(emulator, open_cache(url), HttpxAuth)
            token = await third.aget_token()
            assert third.token_url == emulator.token_url("rfc6749")
            return str(token.access_token)

        assert asyncio.run(go()) == first.get_token().access_token
        assert len(emulator.received_at("metadata")) == 1

    def test_entries_that_cannot_be_used_are_ignored_and_refetched(
        self, emulator: Emulator, tmp_path: Path
    ) -> None:
        cache = FileCache(tmp_path / "cache")
        first = discovering(emulator, cache)
        first.get_token()
        key = first._manager._shared_tokens.metadata_key
        assert cache.load(key) is not None
        assert key != first._manager.config.cache_key
        client = emulator.client("rfc6749")
        # Written by whoever can write to the cache: a valid document for the issuer, naming
        # another token endpoint; unsealed, or sealed with another key, it is not used.
        evil = json.dumps({"issuer": emulator.issuer,
                           "token_endpoint": "http://127.0.0.1:9/evil/token"}).encode()
        foreign = Sealer("another secret", first._manager.config.cache_key)
        tampered = bytearray(cache.load(key) or b"")
        tampered[-1] ^= 0x01
        token_entry = Sealer(client.client_secret, first._manager.config.cache_key).seal_bytes(
            b"{}")  # a token's purpose, not metadata's
        wrong = [
            evil,
            foreign.seal_bytes(evil, b"metadata"),
            bytes(tampered),
            token_entry,
            b"\x00" * 60_000,
            self.sealed(client.client_secret, first, source="http://127.0.0.1:9/elsewhere"),
            self.sealed(client.client_secret, first, expires_at=time.time() - 1),
            self.sealed(client.client_secret, first, document="[]"),
            self.sealed(client.client_secret, first, document=json.dumps(
                {"issuer": "http://127.0.0.1:9", "token_endpoint": "http://127.0.0.1:9/t"})),
            Sealer(client.client_secret, first._manager.config.cache_key).seal_bytes(
                b"not json", b"metadata"),
        ]
        for number, entry in enumerate(wrong, start=2):
            cache.store(key, entry, None)
            other = discovering(emulator, cache)
            assert other.get_token().access_token
            assert other.token_url == emulator.token_url("rfc6749"), entry
            assert len(emulator.received_at("metadata")) == number
        # Beyond its size limit, an entry is not read (a Redis cache has no limit of its own).
        shared_tokens = first._manager._shared_tokens
        good = cache.load(key) or b""
        assert shared_tokens._read_metadata(emulator.issuer, good) is not None
        assert shared_tokens._read_metadata(
            emulator.issuer, good + b" " * MAX_METADATA_ENTRY_BYTES) is None
        # The last one refetched stored a good entry again: taken.
        assert discovering(emulator, cache).get_token()
        assert len(emulator.received_at("metadata")) == len(wrong) + 1
        # A good entry sealed with the client's key is used (the test's own writing).
        cache.store(key, self.sealed(client.client_secret, first, document=json.dumps(
            {"issuer": emulator.issuer, "token_endpoint": emulator.token_url("rfc6749"),
             "token_endpoint_auth_methods_supported": ["client_secret_basic"]})), None)
        last = discovering(emulator, cache)
        last.get_token()
        assert last.metadata.auth_methods == ("client_secret_basic",)
        assert len(emulator.received_at("metadata")) == len(wrong) + 1

    def test_a_process_waits_for_the_one_holding_the_lock(
        self, emulator: Emulator, tmp_path: Path
    ) -> None:
        tried = threading.Event()

        class Watched(FileCache):
            def try_lock(self, key: str, timeout: float) -> object | None:
                handle = super().try_lock(key, timeout)
                tried.set()
                return handle

        cache = Watched(tmp_path / "cache", lock_timeout=30)
        auth = discovering(emulator, cache)
        key = auth._manager._shared_tokens.metadata_key
        holder = FileCache(tmp_path / "cache").try_lock(key, 30)  # another process's
        assert holder is not None
        tokens: list[str] = []
        waiter = threading.Thread(target=lambda: tokens.append(auth.get_token().access_token))
        waiter.start()
        assert tried.wait(30)  # it found no entry, and the lock taken
        issuer = emulator.issuer
        cache.store(key, self.sealed(emulator.client("rfc6749").client_secret, auth, document=(
            json.dumps({"issuer": issuer, "token_endpoint": emulator.token_url("rfc6749"),
                        "token_endpoint_auth_methods_supported": ["client_secret_basic"]}))),
            None)  # what the holder fetched
        waiter.join(30)
        assert tokens
        assert auth.metadata.auth_methods == ("client_secret_basic",)
        assert emulator.received_at("metadata") == []

    @staticmethod
    def sealed(secret: str, auth: Any, **fields: Any) -> bytes:
        """A metadata entry sealed with *secret* for *auth*'s client, *fields* over a good
        one's."""
        manager = auth._manager
        issuer = str(manager.config.issuer)
        plain = {
            "source": metadata_urls(issuer)[0],
            "expires_at": time.time() + 60,
            "document": json.dumps({"issuer": issuer,
                                    "token_endpoint": issuer + "/token"}),
            **fields,
        }
        return Sealer(secret, manager.config.cache_key).seal_bytes(
            json.dumps(plain).encode(), b"metadata")

    def test_a_failing_cache_falls_back_to_fetching(
        self, emulator: Emulator, caplog: pytest.LogCaptureFixture
    ) -> None:
        dead = RedisCache(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5)
        with caplog.at_level(logging.WARNING, logger="oauth_cc_auth"):
            auth = discovering(emulator, dead)
            assert auth.get_token().access_token
            assert auth.token_url == emulator.token_url("rfc6749")
        assert len(emulator.received_at("metadata")) == 1
        assert sum("unavailable" in r.getMessage() for r in caplog.records) == 1


class TestConfiguration:
    def test_cache_urls(self, tmp_path: Path) -> None:
        assert open_cache("memory:") is None
        file_cache = open_cache(f"file://{tmp_path}/c?lock_timeout=5")
        assert isinstance(file_cache, FileCache)
        assert file_cache.lock_timeout == 5
        redis_cache = open_cache("redis://:hunter2@127.0.0.1:6399/3?lock_timeout=7")
        assert isinstance(redis_cache, RedisCache)
        assert redis_cache.lock_timeout == 7
        assert "hunter2" not in repr(redis_cache) + redis_cache.name
        redis_cache.close()
        with pytest.raises(oauth_cc_auth.ConfigurationError, match="accepted: memory:"):
            open_cache("memcached://127.0.0.1")
        with pytest.raises(oauth_cc_auth.ConfigurationError, match="cache must be"):
            build_auth(RequestsAuth, cache=42)

    def test_a_backend_of_your_own(self, emulator: Emulator) -> None:
        class Forgetful(oauth_cc_auth.TokenCache):
            """Every method of the interface but unlock."""

            def __init__(self) -> None:
                self.entries: dict[str, bytes] = {}

            def load(self, key: str) -> bytes | None:
                return self.entries.get(key)

            def store(self, key: str, value: bytes, ttl: float | None) -> None:
                self.entries[key] = value

            def try_lock(self, key: str, timeout: float) -> object | None:
                return key

        with pytest.raises(TypeError, match=r"abstract method '?unlock"):
            Forgetful()  # type: ignore[abstract]

        class Kept(Forgetful):
            def __init__(self) -> None:
                super().__init__()
                self.unlocked: list[str] = []

            def unlock(self, key: str, handle: object) -> None:
                self.unlocked.append(key)

        cache = Kept()
        auth = emulated_auth(emulator, HttpxAuth, PROVIDER, cache=cache)

        async def get() -> int:  # through the async methods' defaults (a worker thread each)
            async with httpx.AsyncClient(auth=auth) as http:
                return (await http.get(emulator.resource_url(PROVIDER))).status_code

        assert asyncio.run(get()) == 200
        [key] = cache.entries
        assert cache.unlocked == [key]
        assert emulator.token_requests[PROVIDER] == 1

    def test_default_file_cache_directory(self, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        cache = open_cache("file:")
        assert isinstance(cache, FileCache)
        assert cache.directory == tmp_path / "xdg" / "oauth-cc-auth"
        assert stat.S_IMODE(os.stat(cache.directory).st_mode) == 0o700

    def test_from_env_and_config(self, emulator: Emulator, tmp_path: Path) -> None:
        client = emulator.client(PROVIDER)
        auth = RequestsAuth.from_env({
            "OAUTH_CC_PROVIDER": PROVIDER, "OAUTH_CC_CLIENT_ID": str(client.client_id),
            "OAUTH_CC_CLIENT_SECRET": client.client_secret,
            "OAUTH_CC_TOKEN_URL": emulator.token_url(PROVIDER),
            "OAUTH_CC_CACHE": f"file://{tmp_path}/env-cache",
        })
        assert isinstance(auth._manager.shared, FileCache)
        other = HttpxAuth.from_config({
            "provider": PROVIDER, "client_id": client.client_id,
            "client_secret": client.client_secret, "cache": "memory:",
            "token_url": emulator.token_url(PROVIDER)})
        assert other._manager.shared is None

    def test_file_lock_is_exclusive_across_handles(self, tmp_path: Path) -> None:
        cache = FileCache(tmp_path)
        key = "ab" * 32
        first = cache.try_lock(key, 5)
        assert first is not None
        results: list[object] = []
        thread = threading.Thread(target=lambda: results.append(cache.try_lock(key, 5)))
        thread.start()
        thread.join()
        assert results == [None]
        cache.unlock(key, first)
        again = cache.try_lock(key, 5)
        assert again is not None
        cache.unlock(key, again)


def connections(server: RedisServer, expected: int) -> int:
    """The server's client connections other than this check's, once they number *expected*
    (a closed connection leaves the server's list a moment later), or after a deadline."""
    with redis.Redis.from_url(server.url) as raw:
        deadline = time.monotonic() + 10
        while True:
            count = len(raw.client_list()) - 1
            if count == expected or time.monotonic() > deadline:
                return count
            time.sleep(0.01)


def test_auth_closes_only_the_cache_it_opened(redis_server: RedisServer) -> None:
    opened = build_auth(HttpxAuth, cache=redis_server.url)
    cache = opened._owned_cache
    assert isinstance(cache, RedisCache)

    async def use_and_close() -> None:
        assert await cache.aload("ab" * 32) is None  # a connection for this call only
        assert connections(redis_server, 0) == 0
        assert cache.load("ab" * 32) is None  # the sync client's pool keeps one
        assert connections(redis_server, 1) == 1
        await opened.aclose()
        assert connections(redis_server, 0) == 0

    asyncio.run(use_and_close())
    given = RedisCache(redis_server.url)
    auth = build_auth(RequestsAuth, cache=given)
    auth.close()
    assert given.load("ab" * 32) is None  # still usable: the auth object did not close it
    given.close()


def wait_for_child(pid: int, pipe: int, deadline: float) -> tuple[bytes, int]:
    """What a forked child wrote to *pipe* until it closed it, and its exit status; the child
    is killed if it is not done by *deadline* (time.monotonic())."""
    chunks = []
    try:
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the child did not finish"
            readable, _, _ = select.select([pipe], [], [], remaining)
            if readable:
                chunk = os.read(pipe, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return b"".join(chunks), os.waitstatus_to_exitcode(status)
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(pipe)


class TestProcessesAndLoops:
    """A Redis connection never crosses a fork or outlives an event loop."""

    # Forking is the point here (Python 3.12+ warns when the test process has threads).
    @pytest.mark.filterwarnings("ignore:.*fork\\(\\) may lead to deadlocks:DeprecationWarning")
    def test_forked_child_opens_its_own_connection(self, redis_server: RedisServer) -> None:
        cache = RedisCache(redis_server.url)
        mine, theirs = "aa" * 32, "bb" * 32
        cache.store(mine, b"stored by the parent", 60)  # the parent's connection is open
        parent_client, parent_id = cache._client, cache._client.client_id()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, and exit whatever happens
            code = 1
            try:
                os.close(read_end)
                handle = cache.try_lock(theirs, 5)
                cache.store(theirs, b"stored by the child", 60)
                cache.unlock(theirs, handle)
                report = {
                    "own client": cache._client is not parent_client,
                    "connection": cache._client.client_id(),
                    "read": (cache.load(mine) or b"").decode(),
                    "read async": (asyncio.run(cache.aload(mine)) or b"").decode(),
                }
                os.write(write_end, json.dumps(report).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        # Meanwhile the parent uses its connection.
        assert [cache.load(mine) for _ in range(50)] == [b"stored by the parent"] * 50
        out, status = wait_for_child(pid, read_end, time.monotonic() + 30)
        assert status == 0
        report = json.loads(out)
        assert report["own client"]
        assert report["connection"] != parent_id  # the server saw another connection
        assert report["read"] == report["read async"] == "stored by the parent"
        assert cache.load(theirs) == b"stored by the child"
        assert cache._client is parent_client
        assert cache._client.client_id() == parent_id  # the child left it alone
        cache.close()

    def test_async_flow_closes_its_connection(
        self, emulator: Emulator, redis_server: RedisServer
    ) -> None:
        cache = RedisCache(redis_server.url)

        async def flow() -> int:
            auth = emulated_auth(emulator, HttpxAuth, PROVIDER, cache=cache)
            auth._manager.slot = MemoryCache().slot("a process of its own")
            async with httpx.AsyncClient(auth=auth) as http:
                status = (await http.get(emulator.resource_url(PROVIDER))).status_code
            await auth.aclose()
            return status

        assert asyncio.run(flow()) == 200  # load, lock, load, store, unlock
        assert connections(redis_server, 0) == 0
        assert asyncio.run(flow()) == 200  # another process's view: found in Redis
        assert connections(redis_server, 0) == 0
        assert emulator.token_requests[PROVIDER] == 1
        cache.close()

    def test_cancelled_flow_closes_its_connection_and_lock(
        self, emulator: Emulator, redis_server: RedisServer
    ) -> None:
        cache = RedisCache(redis_server.url)
        gate = emulator.gate()  # the token request waits there: the flow holds the lock

        async def main() -> None:
            auth = emulated_auth(emulator, HttpxAuth, PROVIDER, cache=cache)
            async with httpx.AsyncClient(auth=auth) as http:
                task = asyncio.create_task(http.get(emulator.resource_url(PROVIDER)))
                assert await asyncio.to_thread(gate.wait_for, 1)
                assert connections(redis_server, 1) == 1
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            await auth.aclose()

        try:
            asyncio.run(main())
        finally:
            gate.open()
        assert connections(redis_server, 0) == 0
        with redis.Redis.from_url(redis_server.url) as raw:
            assert raw.keys("oauth-cc-auth:lock:*") == []  # released though cancelled
        cache.close()

    @pytest.mark.slow
    def test_no_connection_outlives_its_event_loop(self, redis_server: RedisServer) -> None:
        # 100 event loops, each using an object used by all loops and one of its own.
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", str(LOOP_WORKER),
             redis_server.url, "100"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "ResourceWarning" not in result.stderr
        assert "nclosed" not in result.stderr  # unclosed / Unclosed, whoever reports it
        assert "unavailable" not in result.stderr  # the Redis cache was used throughout
        report = json.loads(result.stdout)
        assert report["statuses"] == [200] * 200
        # One token per distinct client: the loops after the first took theirs from Redis.
        assert report["token_requests"] == 51
        with redis.Redis.from_url(redis_server.url) as raw:
            assert len(raw.keys("oauth-cc-auth:token:*")) == 51
            assert raw.keys("oauth-cc-auth:lock:*") == []
