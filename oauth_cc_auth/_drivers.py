"""The drivers of the core's token flow: :func:`run_sync` on the calling thread and
:func:`run_async` on the running event loop (anyio: asyncio and trio alike), side by side.

The flow (``TokenManager.obtain``) yields actions (``_actions``); a driver performs each with
its own I/O and sends the outcome back: the same answers, blocking or awaited. Shared-cache
calls go through a :class:`CacheCalls`, which keeps the locks a flow takes and releases them
when the flow ends, however it ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from oauth_cc_auth._actions import (
    Action,
    CacheCall,
    CacheFailure,
    Outcome,
    Send,
    Sleep,
    Spawn,
    TransportFailure,
    Wait,
    Waited,
    describe,
)
from oauth_cc_auth._flow import TokenManager
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._token import Token
from oauth_cc_auth._token_cache import TokenCache

__all__ = ["CacheCalls", "Spawner", "current_loop", "drive_async", "run_async", "run_sync"]

logger = logging.getLogger("oauth_cc_auth")
T = TypeVar("T")

#: What performs :class:`Spawn`: starts the work in the background and says whether it did.
Spawner = Callable[[Spawn], bool]


class CacheCalls:
    """Performs a flow's ``CacheCall`` actions, and keeps the locks it takes to release them
    when the flow ends. A cache failure is answered ``CacheFailure``, never raised."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: list[tuple[TokenCache, str, object]] = []

    def run(self, call: CacheCall) -> Outcome:
        cache = call.cache
        outcome: Outcome
        if call.op == "load":
            outcome = _call(cache.load, call.key)
        elif call.op == "store":
            outcome = _call(cache.store, call.key, call.value, call.ttl)
        else:
            outcome = self._taken(call, _call(cache.try_lock, call.key, cache.lock_timeout))
        return outcome

    async def arun(self, call: CacheCall) -> Outcome:
        import anyio

        cache = call.cache
        outcome: Outcome
        if call.op == "load":
            outcome = await _acall(cache.aload, call.key)
            return outcome
        if call.op == "store":
            outcome = await _acall(cache.astore, call.key, call.value, call.ttl)
            return outcome
        # Shielded (it is bounded by the cache's own timeout): cancelled between the backend
        # taking the lock and the handle reaching us, nobody would release it.
        with anyio.CancelScope(shield=True):
            handle = await _acall(cache.atry_lock, call.key, cache.lock_timeout)
        return self._taken(call, handle)

    def _taken(self, call: CacheCall, handle: object) -> bool | CacheFailure:
        """The outcome of a lock call from what ``try_lock`` gave; a lock taken is kept."""
        if isinstance(handle, CacheFailure):
            return handle
        if handle is None:
            return False
        self._held.append((call.cache, call.key, handle))
        return True

    def release(self) -> None:
        for cache, key, handle in self._held:
            if isinstance(_call(cache.unlock, key, handle), CacheFailure):
                logger.debug("could not release a lock of %s", cache.name)
        self._held.clear()

    async def arelease(self) -> None:
        for cache, key, handle in self._held:
            if isinstance(await _acall(cache.aunlock, key, handle), CacheFailure):
                logger.debug("could not release a lock of %s", cache.name)
        self._held.clear()

    def __bool__(self) -> bool:
        return bool(self._held)


def _call(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except Exception as exc:  # a cache failure is never a request failure
        return CacheFailure(describe(exc))


async def _acall(function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    try:
        return await function(*args)
    except Exception as exc:  # a cache failure is never a request failure
        return CacheFailure(describe(exc))


# -- on the calling thread -----------------------------------------------------------------------


def run_sync(
    flow: Generator[Action, Outcome, T],
    send: Callable[[TokenRequest], TokenHTTPResponse | TransportFailure],
    sleep: Callable[[float], None] = time.sleep,
    spawn: Spawner | None = None,
) -> T:
    """Drive a token flow (or a metadata flow, ``TokenManager.discover``) on the calling
    thread, doing its I/O with *send* and *sleep*, and its background work with *spawn*
    (without one, the flow runs it inline)."""
    calls = CacheCalls()
    try:
        action = next(flow)
        while True:
            outcome: Outcome = None
            if isinstance(action, Send):
                outcome = send(action.request)
            elif isinstance(action, Spawn):
                outcome = spawn is not None and spawn(action)
            elif isinstance(action, Sleep):
                sleep(action.seconds)
            elif isinstance(action, Wait):
                flight = action.flight
                if flight.loop is not None and flight.thread == threading.get_ident():
                    # A task of the event loop this thread runs is fetching: this caller
                    # blocks that loop, so the task would never finish.
                    outcome = Waited.WOULD_DEADLOCK
                elif flight.done.wait(action.timeout):
                    outcome = Waited.ENDED
                else:
                    outcome = Waited.TIMED_OUT
            else:
                outcome = calls.run(action)
            action = flow.send(outcome)
    except StopIteration as stop:
        result: T = stop.value
        return result
    finally:
        flow.close()
        calls.release()


# -- on the running event loop -------------------------------------------------------------------


def current_loop() -> object:
    """An object identifying the running event loop (equal for the same loop)."""
    import anyio.lowlevel  # only with the async adapters' extras

    return anyio.lowlevel.current_token()


async def run_async(
    manager: TokenManager,
    send: Callable[[TokenRequest], Awaitable[TokenHTTPResponse | TransportFailure]],
    min_generation: int = 0,
    spawn: Spawner | None = None,
) -> Token:
    """Get a token without blocking the event loop, doing the I/O with *send* and the
    background work with *spawn* (without one, the flow runs it inline)."""
    import anyio

    loop = current_loop()
    flow = manager.obtain(loop, anyio.Event, min_generation)
    return await drive_async(flow, send, manager.shared, spawn)


async def drive_async(
    flow: Generator[Action, Outcome, T],
    send: Callable[[TokenRequest], Awaitable[TokenHTTPResponse | TransportFailure]],
    shared: TokenCache | None,
    spawn: Spawner | None = None,
) -> T:
    """Drive *flow* on the running event loop (its cache calls on *shared*, whose async
    connections last as long as the flow: closed in its event loop)."""
    if shared is None:
        return await _drive_async(flow, send, spawn)
    async with shared.asession():
        return await _drive_async(flow, send, spawn)


async def _drive_async(
    flow: Generator[Action, Outcome, T],
    send: Callable[[TokenRequest], Awaitable[TokenHTTPResponse | TransportFailure]],
    spawn: Spawner | None,
) -> T:
    import anyio
    import anyio.to_thread

    loop = current_loop()
    calls = CacheCalls()
    try:
        action = next(flow)
        while True:
            outcome: Outcome = None
            if isinstance(action, Send):
                outcome = await send(action.request)
            elif isinstance(action, Spawn):
                outcome = spawn is not None and spawn(action)
            elif isinstance(action, Sleep):
                await anyio.sleep(action.seconds)
            elif isinstance(action, Wait):
                flight = action.flight
                if flight.loop == loop:
                    with anyio.move_on_after(action.timeout):
                        await flight.event.wait()
                    ended = flight.event.is_set()
                else:
                    # Fetched by a thread or by another event loop: wait off the loop.
                    ended = await anyio.to_thread.run_sync(
                        flight.done.wait, action.timeout, abandon_on_cancel=True
                    )
                outcome = Waited.ENDED if ended else Waited.TIMED_OUT
            else:
                outcome = await calls.arun(action)
            action = flow.send(outcome)
    except StopIteration as stop:
        result: T = stop.value
        return result
    finally:
        flow.close()
        if calls:
            # Released also when cancelled: shielded from the cancellation.
            with anyio.CancelScope(shield=True):
                await calls.arelease()
