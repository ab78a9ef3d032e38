"""The async driver of the core's token flow, on anyio (asyncio and trio alike)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import anyio.to_thread

from oauth_cc_auth._core import Outcome, Send, Sleep, TokenManager, TransportFailure
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._token import Token

__all__ = ["current_loop", "obtain_async"]


def current_loop() -> object:
    """An object identifying the running event loop (equal for the same loop)."""
    return anyio.lowlevel.current_token()


async def obtain_async(
    manager: TokenManager,
    send: Callable[[TokenRequest], Awaitable[TokenHTTPResponse | TransportFailure]],
) -> Token:
    """Get a token without blocking the event loop, doing the I/O with *send*."""
    loop = current_loop()
    flow = manager.obtain(loop, anyio.Event)
    try:
        action = next(flow)
        while True:
            outcome: Outcome = None
            if isinstance(action, Send):
                outcome = await send(action.request)
            elif isinstance(action, Sleep):
                await anyio.sleep(action.seconds)
            else:
                flight = action.flight
                if flight.loop == loop:
                    await flight.event.wait()
                else:
                    # Fetched by a thread or by another event loop: wait off the loop.
                    await anyio.to_thread.run_sync(flight.done.wait, abandon_on_cancel=True)
            action = flow.send(outcome)
    except StopIteration as stop:
        token: Token = stop.value
        return token
    finally:
        flow.close()
