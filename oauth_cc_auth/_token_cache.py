"""The interface of a token cache shared between processes (:class:`TokenCache`)."""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

from oauth_cc_auth.errors import ConfigurationError

__all__ = ["TokenCache", "checked_lock_timeout"]


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

    @contextlib.asynccontextmanager
    async def asession(self) -> AsyncIterator[None]:
        """Surrounds the async calls of one token flow (in one task of one event loop).

        A backend with an async client opens its connection for the flow's first call and
        closes it here, so that nothing outlives the event loop. By default: nothing.
        """
        yield

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


def checked_lock_timeout(value: float) -> float:
    """*value* if it is a usable lock timeout (a finite number of seconds above zero)."""
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(f"lock_timeout must be a finite number of seconds above 0, "
                                 f"not {value!r}")
    return seconds
