"""The async driver of the core's token flow, on anyio (asyncio and trio alike)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from oauth_cc_auth._caches import TokenCache
from oauth_cc_auth._core import (
    CacheFailure,
    CacheLoad,
    CacheStore,
    Outcome,
    Send,
    Sleep,
    TokenManager,
    TransportFailure,
    Wait,
    describe,
    lock_outcome,
)
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._token import Token

__all__ = ["current_loop", "obtain_async"]


def current_loop() -> object:
    """An object identifying the running event loop (equal for the same loop)."""
    return anyio.lowlevel.current_token()


async def _cache_call(function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    try:
        return await function(*args)
    except Exception as exc:  # a cache failure is never a request failure
        return CacheFailure(describe(exc))


async def obtain_async(
    manager: TokenManager,
    send: Callable[[TokenRequest], Awaitable[TokenHTTPResponse | TransportFailure]],
    after: int = 0,
) -> Token:
    """Get a token without blocking the event loop, doing the I/O with *send*."""
    shared = manager.shared
    if shared is None:
        return await _obtain(manager, send, after)
    # A shared cache's async connections last as long as this flow: closed in its event loop.
    async with shared.asession():
        return await _obtain(manager, send, after)


async def _obtain(
    manager: TokenManager,
    send: Callable[[TokenRequest], Awaitable[TokenHTTPResponse | TransportFailure]],
    after: int,
) -> Token:
    loop = current_loop()
    flow = manager.obtain(loop, anyio.Event, after)
    locks: list[tuple[TokenCache, str, object]] = []
    try:
        action = next(flow)
        while True:
            outcome: Outcome = None
            if isinstance(action, Send):
                outcome = await send(action.request)
            elif isinstance(action, Sleep):
                await anyio.sleep(action.seconds)
            elif isinstance(action, Wait):
                flight = action.flight
                if flight.loop == loop:
                    with anyio.move_on_after(action.timeout):
                        await flight.event.wait()
                    outcome = None if flight.event.is_set() else False
                else:
                    # Fetched by a thread or by another event loop: wait off the loop.
                    ended = await anyio.to_thread.run_sync(
                        flight.done.wait, action.timeout, abandon_on_cancel=True
                    )
                    outcome = None if ended else False
            elif isinstance(action, CacheLoad):
                outcome = await _cache_call(action.cache.aload, action.key)
            elif isinstance(action, CacheStore):
                outcome = await _cache_call(
                    action.cache.astore, action.key, action.value, action.ttl
                )
            else:
                cache = action.cache
                # Shielded (it is bounded by the cache's own timeout): cancelled between the
                # backend taking the lock and the handle reaching us, nobody would release it.
                with anyio.CancelScope(shield=True):
                    handle = await _cache_call(cache.atry_lock, action.key, cache.lock_timeout)
                outcome = lock_outcome(locks, cache, action.key, handle)
            action = flow.send(outcome)
    except StopIteration as stop:
        token: Token = stop.value
        return token
    finally:
        flow.close()
        if locks:
            # Released also when cancelled: shielded from the cancellation.
            with anyio.CancelScope(shield=True):
                for cache, key, handle in locks:
                    await _cache_call(cache.aunlock, key, handle)
