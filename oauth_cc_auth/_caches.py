"""Token caches shared between processes: the interface, the file cache, the Redis cache.

The auth object keeps its token in the in-process memory cache first, so a warm token costs no
cache I/O; a shared cache is consulted only when the memory cache has no fresh token. Entries
are sealed by the core (see ``_sealed``): a cache only ever sees opaque bytes, under keys that
are digests, never a secret.
"""

from __future__ import annotations

import abc
import contextlib
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from oauth_cc_auth.errors import ConfigurationError

__all__ = ["FileCache", "RedisCache", "TokenCache", "open_cache"]


class TokenCache(abc.ABC):
    """A cache shared by processes: opaque entries, and a lock per key for single flight.

    Subclass it for a backend of your own. The async methods default to running the sync
    ones in a worker thread; override them where the backend has an async client.
    """

    #: How long a lock is held at most (a holder that dies frees it after this), and how long
    #: a process waits for another's token request before making its own.
    lock_timeout: float = 30.0

    @abc.abstractmethod
    def load(self, key: str) -> bytes | None:
        """The entry under *key*, or ``None``."""

    @abc.abstractmethod
    def store(self, key: str, value: bytes, ttl: float | None) -> None:
        """Keep *value* under *key* for *ttl* seconds (``None``: no expiry)."""

    @abc.abstractmethod
    def try_lock(self, key: str, timeout: float) -> object | None:
        """Take the lock of *key* without waiting: a handle for :meth:`unlock`, or ``None``
        if another holds it. It is released after *timeout* seconds at the latest."""

    @abc.abstractmethod
    def unlock(self, key: str, handle: object) -> None:
        """Release a lock taken by :meth:`try_lock`."""

    async def aload(self, key: str) -> bytes | None:
        """:meth:`load` without blocking the event loop."""
        value: bytes | None = await _in_thread(self.load, key)
        return value

    async def astore(self, key: str, value: bytes, ttl: float | None) -> None:
        """:meth:`store` without blocking the event loop."""
        await _in_thread(self.store, key, value, ttl)

    async def atry_lock(self, key: str, timeout: float) -> object | None:
        """:meth:`try_lock` without blocking the event loop."""
        handle: object | None = await _in_thread(self.try_lock, key, timeout)
        return handle

    async def aunlock(self, key: str, handle: object) -> None:
        """:meth:`unlock` without blocking the event loop."""
        await _in_thread(self.unlock, key, handle)

    def close(self) -> None:  # noqa: B027 - optional for subclasses
        """Release the cache's connections, if it has any."""

    async def aclose(self) -> None:
        """Release the cache's connections, async ones included."""
        self.close()

    @property
    def name(self) -> str:
        """What to call the cache in messages (never with a password)."""
        return type(self).__name__


async def _in_thread(function: Any, *args: Any) -> Any:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(function, *args)


def _default_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "oauth-cc-auth"


class FileCache(TokenCache):
    """Tokens in files of one directory, for the processes of one host (CLI, cron, HTTPie).

    Files are created ``0600`` in a ``0700`` directory (by default ``~/.cache/oauth-cc-auth``,
    or under ``$XDG_CACHE_HOME``), replaced atomically, and locked with ``flock``, which the
    operating system releases when a holder dies.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *,
                 lock_timeout: float = 30.0) -> None:
        try:
            import fcntl  # noqa: F401 - POSIX only
        except ImportError:  # pragma: no cover - Windows
            raise ConfigurationError("the file cache needs a POSIX system (fcntl)") from None
        self.directory = Path(directory) if directory is not None else _default_directory()
        self.lock_timeout = lock_timeout
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the cache directory {str(self.directory)!r}: {exc.strerror}"
            ) from None

    @property
    def name(self) -> str:
        return f"file://{self.directory}"

    def _path(self, key: str, suffix: str) -> Path:
        if not key.isalnum():
            raise ValueError("cache keys are digests")
        return self.directory / f"{key}.{suffix}"

    def load(self, key: str) -> bytes | None:
        try:
            return self._path(key, "token").read_bytes()
        except FileNotFoundError:
            return None

    def store(self, key: str, value: bytes, ttl: float | None) -> None:
        import tempfile

        # mkstemp creates the file 0600; os.replace makes the new entry appear whole.
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(value)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self._path(key, "token"))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def try_lock(self, key: str, timeout: float) -> object | None:
        import fcntl

        fd = os.open(self._path(key, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def unlock(self, key: str, handle: object) -> None:
        import fcntl

        if not isinstance(handle, int):
            raise TypeError(f"not a lock handle of this cache: {handle!r}")
        try:
            fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            os.close(handle)

    def __repr__(self) -> str:
        return f"FileCache({str(self.directory)!r})"


_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisCache(TokenCache):
    """Tokens in Redis, for a fleet: entries expire with their token, and a lock with a timeout
    (``SET NX PX``) gives one token request for every process holding the same client id.

    Needs redis-py (``pip install "oauth-cc-auth[redis]"``); async flows use its asyncio
    client, one per event loop.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, lock_timeout: float = 30.0,
                 socket_timeout: float = 2.0, prefix: str = "oauth-cc-auth:") -> None:
        try:
            import redis
        except ImportError:
            raise ConfigurationError(
                "the Redis cache needs redis-py: pip install 'oauth-cc-auth[redis]'"
            ) from None
        self._url = url
        self._socket_timeout = socket_timeout
        self.lock_timeout = lock_timeout
        self.prefix = prefix
        try:
            self._client = redis.Redis.from_url(
                url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
        except ValueError as exc:
            raise ConfigurationError(f"bad Redis URL {without_password(url)!r}: {exc}") from None
        self._async: tuple[object, Any] | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return without_password(self._url)

    def _names(self, key: str) -> tuple[str, str]:
        return f"{self.prefix}token:{key}", f"{self.prefix}lock:{key}"

    @staticmethod
    def _px(seconds: float | None) -> int | None:
        return None if seconds is None else max(1, int(seconds * 1000))

    def load(self, key: str) -> bytes | None:
        value = self._client.get(self._names(key)[0])
        return value.encode() if isinstance(value, str) else value

    def store(self, key: str, value: bytes, ttl: float | None) -> None:
        self._client.set(self._names(key)[0], value, px=self._px(ttl))

    def try_lock(self, key: str, timeout: float) -> object | None:
        import secrets

        handle = secrets.token_hex(16)
        taken = self._client.set(self._names(key)[1], handle, nx=True, px=self._px(timeout))
        return handle if taken else None

    def unlock(self, key: str, handle: object) -> None:
        self._client.eval(_UNLOCK, 1, self._names(key)[1], str(handle))

    def _async_client(self) -> Any:
        import anyio.lowlevel
        import redis.asyncio

        loop = anyio.lowlevel.current_token()
        with self._lock:
            if self._async is None or self._async[0] != loop:
                client = redis.asyncio.Redis.from_url(
                    self._url,
                    socket_timeout=self._socket_timeout,
                    socket_connect_timeout=self._socket_timeout,
                )
                self._async = (loop, client)
            return self._async[1]

    async def aload(self, key: str) -> bytes | None:
        value = await self._async_client().get(self._names(key)[0])
        return value.encode() if isinstance(value, str) else value

    async def astore(self, key: str, value: bytes, ttl: float | None) -> None:
        await self._async_client().set(self._names(key)[0], value, px=self._px(ttl))

    async def atry_lock(self, key: str, timeout: float) -> object | None:
        import secrets

        handle = secrets.token_hex(16)
        client = self._async_client()
        taken = await client.set(self._names(key)[1], handle, nx=True, px=self._px(timeout))
        return handle if taken else None

    async def aunlock(self, key: str, handle: object) -> None:
        await self._async_client().eval(_UNLOCK, 1, self._names(key)[1], str(handle))

    def close(self) -> None:
        """Close the sync client (an asyncio client is closed by :meth:`aclose`)."""
        self._client.close()

    async def aclose(self) -> None:
        """Close both clients; call it in the event loop that used the cache."""
        self.close()
        with self._lock:
            current, self._async = self._async, None
        if current is not None:
            await current[1].aclose()

    def __repr__(self) -> str:
        return f"RedisCache({self.name!r})"


def open_cache(url: str) -> TokenCache | None:
    """The cache a URL names: ``memory:`` (``None``: the in-process cache only), ``file:``
    or ``file:///dir``, ``redis://host:port/db`` (``rediss://`` for TLS). A
    ``lock_timeout`` query parameter sets the lock timeout.

    Raises:
        ConfigurationError: the URL names no known cache, or is malformed.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"cache must be a cache object or a URL, not {url!r}")
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    try:
        lock_timeout = float(query.pop("lock_timeout", 30.0))
    except ValueError:
        raise ConfigurationError("lock_timeout must be a number of seconds") from None
    if parts.scheme == "memory":
        return None
    if parts.scheme == "file":
        return FileCache(parts.path or None, lock_timeout=lock_timeout)
    if parts.scheme in ("redis", "rediss", "unix"):
        rest = urlunsplit(parts._replace(query=urlencode(query)))
        return RedisCache(rest, lock_timeout=lock_timeout)
    raise ConfigurationError(
        f"unknown cache {without_password(url)!r}; accepted: memory:, file:[///dir], "
        "redis://host:port/db"
    )
