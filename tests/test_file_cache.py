"""The file cache cannot be steered by anyone else who can write on the host: an unsafe
directory is refused, hostile entries and lock files never hang, exhaust or redirect a token
request, and a lock held forever costs at most ``lock_timeout``."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import requests

from oauth_cc_auth import ConfigurationError, FileCache, MemoryCache
from oauth_cc_auth._caches import open_cache
from oauth_cc_auth._file_cache import MAX_ENTRY_BYTES
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import Emulator

PROVIDER = "fcc_finance"
KEY = "ab" * 32
#: Generous: only a hang or a wait far beyond lock_timeout exceeds it.
DEADLINE = 20.0


def in_thread(function: Callable[[], Any]) -> Any:
    """Run *function* in a thread, failing (not hanging) if it takes longer than DEADLINE."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(function())
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(DEADLINE)
    assert not thread.is_alive(), f"{function} did not return within {DEADLINE} s"
    if errors:
        raise errors[0]
    return result[0]


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700)
    return path


def auth_for(emulator: Emulator, cache: Any) -> RequestsAuth:
    client = emulator.client(PROVIDER)
    auth = RequestsAuth(client.client_id, client.client_secret, cache=cache,
                        token_url=emulator.token_url(PROVIDER), **client.options())
    auth._manager.slot = MemoryCache().slot("a process of its own")
    return auth


def get(emulator: Emulator, auth: RequestsAuth) -> int:
    url = emulator.resource_url(PROVIDER)
    status: int = in_thread(lambda: requests.get(url, auth=auth, timeout=10).status_code)
    return status


@pytest.fixture
def foreign_owner(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Makes a path another user's: for real as root, else by changing who we are."""

    def make(path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, 65534, 65534, follow_symlinks=False)
        else:
            real = os.geteuid()
            monkeypatch.setattr(os, "geteuid", lambda: real + 1)

    return make


class TestDirectory:
    """A directory others can write to, or another user's, is refused."""

    @pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o1777], ids=oct)
    def test_writable_by_others_is_refused(self, tmp_path: Path, mode: int,
                                           oauth_cc_emulator: Emulator) -> None:
        directory = private_dir(tmp_path / "shared")
        directory.chmod(mode)
        with pytest.raises(ConfigurationError) as info:
            FileCache(directory)
        message = str(info.value)
        assert str(directory) in message
        assert "writable by other users" in message
        assert "chmod 700" in message
        with pytest.raises(ConfigurationError, match="chmod 700"):
            open_cache(f"file://{directory}")
        with pytest.raises(ConfigurationError, match="chmod 700"):
            auth_for(oauth_cc_emulator, f"file://{directory}")
        assert list(directory.iterdir()) == []  # nothing written there
        directory.chmod(0o700)  # the fix the message gives
        assert FileCache(directory).load(KEY) is None

    def test_another_users_directory_is_refused(
        self, tmp_path: Path, foreign_owner: Callable[[Path], None]
    ) -> None:
        directory = private_dir(tmp_path / "theirs")
        foreign_owner(directory)
        with pytest.raises(ConfigurationError, match="owned by another user") as info:
            FileCache(directory)
        assert str(directory) in str(info.value)

    def test_symlinked_directory_is_checked_where_it_leads(self, tmp_path: Path) -> None:
        mine = private_dir(tmp_path / "mine")
        link = tmp_path / "link"
        link.symlink_to(mine)
        cache = FileCache(link)
        cache.store(KEY, b"sealed", None)
        assert cache.load(KEY) == b"sealed"
        assert (mine / f"{KEY}.token").read_bytes() == b"sealed"
        mine.chmod(0o777)
        with pytest.raises(ConfigurationError, match="writable by other users"):
            FileCache(link)

    def test_symlink_of_another_user_is_refused(
        self, tmp_path: Path, foreign_owner: Callable[[Path], None]
    ) -> None:
        if os.geteuid() != 0:
            pytest.skip("needs root to make a symbolic link another user's")
        mine = private_dir(tmp_path / "mine")
        link = tmp_path / "link"
        link.symlink_to(mine)
        foreign_owner(link)
        with pytest.raises(ConfigurationError, match="symbolic link owned by another user"):
            FileCache(link)

    def test_made_unsafe_later_is_a_cache_failure(
        self, tmp_path: Path, oauth_cc_emulator: Emulator, caplog: pytest.LogCaptureFixture
    ) -> None:
        directory = private_dir(tmp_path / "cache")
        cache = FileCache(directory)
        directory.chmod(0o777)  # checked on every use, not only at construction
        with pytest.raises(ConfigurationError, match="writable by other users"):
            cache.load(KEY)
        auth = auth_for(oauth_cc_emulator, cache)
        with caplog.at_level(logging.WARNING, logger="oauth_cc_auth"):
            assert get(oauth_cc_emulator, auth) == 200
            assert get(oauth_cc_emulator, auth) == 200
        assert list(directory.iterdir()) == []
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1
        assert "using the in-process cache" in warnings[0]
        assert "chmod 700" in warnings[0]


class TestDefaultDirectory:
    """``file:`` with an unsafe default directory: one warning, and the memory cache."""

    @pytest.fixture
    def unsafe_default(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        directory = tmp_path / "xdg" / "oauth-cc-auth"
        directory.mkdir(parents=True)
        directory.chmod(0o777)  # created beforehand by someone else
        return directory

    def test_one_warning_and_memory_only(self, unsafe_default: Path,
                                         oauth_cc_emulator: Emulator,
                                         caplog: pytest.LogCaptureFixture) -> None:
        client = oauth_cc_emulator.client(PROVIDER)
        with caplog.at_level(logging.WARNING, logger="oauth_cc_auth"):
            assert open_cache("file:") is None
            auths = [RequestsAuth(client.client_id, client.client_secret, cache="file:",
                                  token_url=oauth_cc_emulator.token_url(PROVIDER),
                                  **client.options()) for _ in range(3)]
            for auth in auths:
                assert auth._manager.shared is None
                assert get(oauth_cc_emulator, auth) == 200
        assert oauth_cc_emulator.token_requests[PROVIDER] == 1  # the memory cache shares it
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 1
        assert str(unsafe_default) in messages[0]
        assert "chmod 700" in messages[0]
        assert "in-process cache only" in messages[0]
        assert client.client_secret not in messages[0]
        assert list(unsafe_default.iterdir()) == []

    def test_file_cache_object_works_memory_only(self, unsafe_default: Path) -> None:
        cache = FileCache()
        assert cache.memory_only
        cache.store(KEY, b"sealed", 60)
        assert cache.load(KEY) is None
        handle = cache.try_lock(KEY, 5)
        assert handle is not None
        cache.unlock(KEY, handle)
        assert list(unsafe_default.iterdir()) == []

    def test_an_uncreatable_default_is_memory_only_too(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (tmp_path / "xdg").mkdir()
        (tmp_path / "xdg" / "oauth-cc-auth").write_bytes(b"")  # a file where the directory goes
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert open_cache("file:") is None


def sparse_gigabyte(path: Path) -> None:
    with path.open("wb") as file:
        file.truncate(1 << 30)


#: Things another user could have left at an entry's path.
HOSTILE: dict[str, Callable[[Path], object]] = {
    "fifo": lambda path: os.mkfifo(path, 0o600),
    "symlink-to-dev-zero": lambda path: path.symlink_to("/dev/zero"),
    "symlink-to-a-file": lambda path: path.symlink_to(path.parent.parent / "elsewhere"),
    "huge-sparse-file": sparse_gigabyte,
    "just-over-the-cap": lambda path: path.write_bytes(b"x" * (MAX_ENTRY_BYTES + 1)),
    "directory": lambda path: path.mkdir(),
}


class TestHostileEntries:
    """Whatever is at an entry's path, a token request neither hangs nor fails."""

    @pytest.mark.parametrize("kind", list(HOSTILE))
    def test_is_no_entry(self, kind: str, tmp_path: Path, oauth_cc_emulator: Emulator,
                         caplog: pytest.LogCaptureFixture) -> None:
        (tmp_path / "elsewhere").write_bytes(b"not an entry")
        directory = private_dir(tmp_path / "cache")
        cache = FileCache(directory)
        auth = auth_for(oauth_cc_emulator, cache)
        entry = directory / f"{auth._config.cache_key}.token"
        HOSTILE[kind](entry)
        with caplog.at_level(logging.WARNING, logger="oauth_cc_auth"):
            assert in_thread(lambda: cache.load(auth._config.cache_key)) is None
            assert get(oauth_cc_emulator, auth) == 200
        assert oauth_cc_emulator.token_requests[PROVIDER] == 1
        messages = [r.getMessage() for r in caplog.records]
        ignoring = [m for m in messages if f"ignoring token cache entry {entry}" in m]
        assert len(ignoring) == 1  # once, though it was looked at more than once
        assert (tmp_path / "elsewhere").read_bytes() == b"not an entry"
        if kind == "directory":  # cannot be replaced: the cache is out of use for a while
            assert "using the in-process cache" in messages[-1]
            return
        # Replaced by the token stored: another process takes it from there.
        assert stat.S_ISREG(entry.lstat().st_mode)
        assert stat.S_IMODE(entry.lstat().st_mode) == 0o600
        other = auth_for(oauth_cc_emulator, FileCache(directory))
        assert get(oauth_cc_emulator, other) == 200
        assert oauth_cc_emulator.token_requests[PROVIDER] == 1


class TestLockFiles:
    """Lock files are created 0600, never followed, and a held lock costs lock_timeout."""

    def test_created_private(self, tmp_path: Path) -> None:
        directory = private_dir(tmp_path / "cache")
        cache = FileCache(directory)
        handle = cache.try_lock(KEY, 5)
        assert handle is not None
        assert stat.S_IMODE((directory / f"{KEY}.lock").stat().st_mode) == 0o600
        cache.unlock(KEY, handle)

    @pytest.mark.parametrize("kind", ["symlink", "fifo"])
    def test_hostile_lock_file(self, kind: str, tmp_path: Path, oauth_cc_emulator: Emulator,
                               caplog: pytest.LogCaptureFixture) -> None:
        directory = private_dir(tmp_path / "cache")
        cache = FileCache(directory)
        auth = auth_for(oauth_cc_emulator, cache)
        lock = directory / f"{auth._config.cache_key}.lock"
        victim = tmp_path / "victim"
        if kind == "symlink":
            lock.symlink_to(victim)
        else:
            os.mkfifo(lock, 0o600)
        with pytest.raises(OSError):  # noqa: PT011 - ELOOP or "not a regular file"
            in_thread(lambda: cache.try_lock(auth._config.cache_key, 5))
        with caplog.at_level(logging.WARNING, logger="oauth_cc_auth"):
            assert get(oauth_cc_emulator, auth) == 200
        assert not victim.exists()  # nothing created where the link points
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 1
        assert "using the in-process cache" in messages[0]

    @pytest.mark.parametrize("value", ["inf", "nan", "0", "-1"])
    def test_lock_timeout_is_bounded(self, value: str, tmp_path: Path) -> None:
        directory = private_dir(tmp_path / "cache")
        with pytest.raises(ConfigurationError, match="lock_timeout"):
            open_cache(f"file://{directory}?lock_timeout={value}")
        with pytest.raises(ConfigurationError, match="lock_timeout"):
            FileCache(directory, lock_timeout=float(value))

    @pytest.fixture
    def holder(self, tmp_path: Path) -> Iterator[Callable[[Path], None]]:
        """Another process that takes a lock file's flock and keeps it until the test ends."""
        processes: list[subprocess.Popen[str]] = []
        code = ("import fcntl, os, sys\n"
                "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX)\n"
                "print('held', flush=True)\n"
                "sys.stdin.read()\n")

        def hold(path: Path) -> None:
            process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True,
            )
            processes.append(process)
            assert process.stdout is not None
            assert process.stdout.readline() == "held\n"  # or "" if it died: no hang

        yield hold
        for process in processes:
            process.communicate("", timeout=DEADLINE)  # its stdin closed: it exits

    # A lock held forever costs lock_timeout of wall-clock time: the default run keeps the sync
    # case and the async one on asyncio.
    @pytest.mark.anyio
    @pytest.mark.parametrize(
        ("mode", "anyio_backend"),
        [pytest.param("sync", "asyncio", id="sync"),
         pytest.param("async", "asyncio", id="async-asyncio"),
         pytest.param("async", "trio", id="async-trio", marks=pytest.mark.slow)],
    )
    async def test_held_forever_costs_lock_timeout(
        self, mode: str, tmp_path: Path, oauth_cc_emulator: Emulator,
        holder: Callable[[Path], None], caplog: pytest.LogCaptureFixture
    ) -> None:
        lock_timeout = 1.0
        directory = private_dir(tmp_path / "cache")
        client = oauth_cc_emulator.client(PROVIDER)
        options = {"token_url": oauth_cc_emulator.token_url(PROVIDER), **client.options()}
        url = oauth_cc_emulator.resource_url(PROVIDER)
        cache = FileCache(directory, lock_timeout=lock_timeout)
        if mode == "sync":
            auth: Any = RequestsAuth(client.client_id, client.client_secret, cache=cache,
                                     **options)
        else:
            auth = HttpxAuth(client.client_id, client.client_secret, cache=cache, **options)
        holder(directory / f"{auth._config.cache_key}.lock")

        async def request() -> int:
            if mode == "sync":
                return await anyio.to_thread.run_sync(
                    in_thread, lambda: requests.get(url, auth=auth, timeout=10).status_code
                )
            with anyio.fail_after(DEADLINE):
                async with httpx.AsyncClient(auth=auth, timeout=10) as http:
                    return (await http.get(url)).status_code

        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="oauth_cc_auth"):
            assert await request() == 200
        elapsed = time.monotonic() - started
        # It waited for the holder's token (lock_timeout), then fetched its own; the upper
        # bound is DEADLINE (in_thread, fail_after), far above lock_timeout whatever the load.
        assert elapsed >= lock_timeout
        assert oauth_cc_emulator.token_requests[PROVIDER] == 1
        assert any("after waiting" in r.getMessage() for r in caplog.records)
        # The token it fetched is in the cache for the others (storing needs no lock).
        other = auth_for(oauth_cc_emulator, FileCache(directory, lock_timeout=lock_timeout))
        assert await anyio.to_thread.run_sync(get, oauth_cc_emulator, other) == 200
        assert oauth_cc_emulator.token_requests[PROVIDER] == 1


class TestFork:
    """A forked child keeps none of its parent's locks."""

    # Forking is the point here (Python 3.12+ warns when the test process has threads).
    @pytest.mark.filterwarnings("ignore:.*fork\\(\\) may lead to deadlocks:DeprecationWarning")
    def test_parent_dying_with_a_lock_frees_it_though_its_child_lives(
        self, tmp_path: Path
    ) -> None:
        directory = private_dir(tmp_path / "cache")
        cache = FileCache(directory)
        handle = cache.try_lock(KEY, 5)
        assert isinstance(handle, int)
        ready_r, ready_w = os.pipe()
        done_r, done_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child lives on while the parent "dies"
            code = 1
            try:
                os.close(ready_r)
                os.close(done_w)
                os.write(ready_w, b"live")
                os.read(done_r, 1)  # until the parent is done (or gone)
                code = 0
            finally:
                os._exit(code)
        os.close(ready_w)
        os.close(done_r)
        try:
            assert in_thread(lambda: os.read(ready_r, 4)) == b"live"
            os.close(handle)  # as a parent killed while holding the lock: no LOCK_UN
            cache._held.discard(handle)
            other = FileCache(directory)
            again = other.try_lock(KEY, 5)  # free: the child kept no copy of it
            assert again is not None
            other.unlock(KEY, again)
        finally:
            os.close(done_w)  # the child exits
            os.close(ready_r)
            _, status = in_thread(lambda: os.waitpid(pid, 0))
        assert os.waitstatus_to_exitcode(status) == 0
