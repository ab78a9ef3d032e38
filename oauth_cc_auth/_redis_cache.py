"""The Redis cache: tokens for a fleet of processes on many hosts."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from oauth_cc_auth._token_cache import TokenCache, checked_lock_timeout
from oauth_cc_auth.errors import ConfigurationError

__all__ = ["RedisCache", "without_password"]


_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


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
        self.lock_timeout = checked_lock_timeout(lock_timeout)
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
