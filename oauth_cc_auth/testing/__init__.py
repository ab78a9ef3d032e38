"""Helpers for testing code that uses oauth_cc_auth: a fake clock, and an emulator of the
providers' token endpoints with a protected resource each, served over loopback or answering
in process, scriptable (also a pytest fixture, ``oauth_cc_emulator``)."""

from __future__ import annotations

import threading

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
]


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
