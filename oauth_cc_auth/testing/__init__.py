"""Helpers for testing code that uses oauth_cc_auth: a fake clock, and an emulator of the
providers' token endpoints with a protected resource each, served over loopback or answering
in process, scriptable (also a pytest fixture, ``oauth_cc_emulator``)."""

from __future__ import annotations

import threading
from typing import Any

from oauth_cc_auth.testing._emulator import Answered as Answered
from oauth_cc_auth.testing._emulator import EmulatedClient as EmulatedClient
from oauth_cc_auth.testing._emulator import Emulator as Emulator
from oauth_cc_auth.testing._emulator import Gate as Gate
from oauth_cc_auth.testing._emulator import NoAnswer as NoAnswer
from oauth_cc_auth.testing._emulator import ProviderSite as ProviderSite
from oauth_cc_auth.testing._emulator import Received as Received
from oauth_cc_auth.testing._emulator import Reply as Reply

__all__ = [
    "Answered",
    "EmulatedClient",
    "Emulator",
    "FakeClock",
    "Gate",
    "NoAnswer",
    "ProviderSite",
    "Received",
    "Reply",
    "await_refresh",
    "wait_for_refresh",
]


def wait_for_refresh(auth: Any, timeout: float = 10.0) -> None:
    """Wait until the refreshes ahead that *auth* (any adapter's auth object) runs in the
    background threads have ended: after moving a :class:`FakeClock` into a token's refresh
    window, so that the test sees the refreshed token.

    Raises:
        TimeoutError: one still runs after *timeout* seconds.
    """
    if not auth._background.join(timeout):
        raise TimeoutError(f"a background token refresh still runs after {timeout:g} s")


async def await_refresh(auth: Any, timeout: float = 10.0) -> None:
    """:func:`wait_for_refresh` for async code: awaits the refresh tasks *auth* runs on
    the running event loop too.

    Raises:
        TimeoutError: one still runs after *timeout* seconds.
    """
    if not await auth._background.ajoin(timeout):
        raise TimeoutError(f"a background token refresh still runs after {timeout:g} s")


class FakeClock:
    """A monotonic clock that moves only when told to; pass it as ``clock=``.

    Example::

        clock = FakeClock()
        auth = ClientCredentialsAuth(..., clock=clock)
        clock.advance(3600)   # the token is now an hour older
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock *seconds* forward."""
        if seconds < 0:
            raise ValueError("a monotonic clock does not go backwards")
        with self._lock:
            self._now += seconds
