"""Helpers for testing code that uses oauth_cc_auth."""

from __future__ import annotations

import threading

__all__ = ["FakeClock"]


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
