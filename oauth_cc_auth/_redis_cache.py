"""The Redis cache: tokens for a fleet of processes on many hosts.

Connections never cross a process or an event loop: after ``fork()`` the child opens its own
(the parent's sockets are left to the parent), and an async token flow uses a connection of
its own, opened on its first call and closed when the flow ends, in the flow's event loop.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from oauth_cc_auth._fork import reset_in_child
from oauth_cc_auth._token_cache import TokenCache, checked_lock_timeout
from oauth_cc_auth.errors import ConfigurationError

__all__ = ["RedisCache", "without_password"]

logger = logging.getLogger("oauth_cc_auth")

_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

#: The async token flow running in this task: (its cache, its client once opened).
_session: contextvars.ContextVar[tuple[RedisCache, list[Any]] | None] = contextvars.ContextVar(
    "oauth_cc_auth_redis_session", default=None
)


def without_password(url: str) -> str:
    """*url* with its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisCache(TokenCache):
    """Tokens in Redis, for a fleet: entries expire with their token, and a lock with a timeout
    (``SET NX PX``) gives one token request for every process holding the same client id.

    Needs redis-py (``pip install "oauth-cc-auth[redis]"``). Threads share a connection pool;
    an async token flow (asyncio) opens one connection and closes it when it ends, so no
    connection outlives its event loop. A forked child opens connections of its own.
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
        self.lock_timeout = checked_lock_timeout(lock_timeout)
        self.prefix = prefix
        try:
            self._client = redis.Redis.from_url(url, **self._options())
        except ValueError as exc:
            raise ConfigurationError(f"bad Redis URL {without_password(url)!r}: {exc}") from None
        reset_in_child(self)

    def _options(self) -> dict[str, Any]:
        return {"socket_timeout": self._socket_timeout,
                "socket_connect_timeout": self._socket_timeout}

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
        handle = secrets.token_hex(16)
        taken = self._client.set(self._names(key)[1], handle, nx=True, px=self._px(timeout))
        return handle if taken else None

    def unlock(self, key: str, handle: object) -> None:
        self._client.eval(_UNLOCK, 1, self._names(key)[1], str(handle))

    # -- async: one connection per token flow -----------------------------------------------

    @contextlib.asynccontextmanager
    async def asession(self) -> AsyncIterator[None]:
        """The async calls of one token flow share one connection, closed at the end."""
        opened: list[Any] = []
        token = _session.set((self, opened))
        try:
            yield
        finally:
            _session.reset(token)
            if opened:
                await _close(opened[0])

    def _new_async_client(self) -> Any:
        import redis.asyncio

        return redis.asyncio.Redis.from_url(
            self._url, single_connection_client=True, **self._options()
        )

    @contextlib.asynccontextmanager
    async def _async_client(self) -> AsyncIterator[Any]:
        session = _session.get()
        if session is not None and session[0] is self:
            if not session[1]:
                session[1].append(self._new_async_client())
            yield session[1][0]
            return
        client = self._new_async_client()  # a call outside a token flow: a connection for it
        try:
            yield client
        finally:
            await _close(client)

    async def aload(self, key: str) -> bytes | None:
        async with self._async_client() as client:
            value = await client.get(self._names(key)[0])
        return value.encode() if isinstance(value, str) else value

    async def astore(self, key: str, value: bytes, ttl: float | None) -> None:
        async with self._async_client() as client:
            await client.set(self._names(key)[0], value, px=self._px(ttl))

    async def atry_lock(self, key: str, timeout: float) -> object | None:
        handle = secrets.token_hex(16)
        async with self._async_client() as client:
            taken = await client.set(self._names(key)[1], handle, nx=True, px=self._px(timeout))
        return handle if taken else None

    async def aunlock(self, key: str, handle: object) -> None:
        async with self._async_client() as client:
            await client.eval(_UNLOCK, 1, self._names(key)[1], str(handle))

    def close(self) -> None:
        """Close the connections of the sync client (async ones close with their flow)."""
        self._client.close()

    def reset_after_fork(self) -> None:
        # A new pool: the parent's connections stay the parent's. (Garbage-collected in the
        # child, redis-py closes its copies of their sockets without shutting them down.)
        self._client = type(self._client).from_url(self._url, **self._options())

    def __repr__(self) -> str:
        return f"RedisCache({self.name!r})"


async def _close(client: Any) -> None:
    import anyio

    # Closed even when the flow is cancelled, within the socket timeout.
    with anyio.CancelScope(shield=True):
        try:
            await client.aclose()
        except Exception as exc:  # a cache failure is never a request failure
            logger.debug("could not close a Redis connection: %s", type(exc).__name__)

