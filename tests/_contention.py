"""Callers made to overlap, never assumed to: the emulator holds the token request at a gate
until the slot counts every other caller waiting for that request
(``TokenSlot.statistics().waiters``); only then is the gate opened. A test whose callers do not
overlap fails instead of passing by luck. Shared by the single-flight tests of every adapter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from oauth_cc_auth._slots import TokenSlot
from oauth_cc_auth.testing import Emulator, Gate

__all__ = ["DEADLINE", "acontend", "contend"]

#: Seconds any wait may take before the test fails (a held token request is answered 503
#: after as long, so nothing is left hanging).
DEADLINE = 20.0


def _in_place(gate: Gate, slot: TokenSlot, callers: int) -> Callable[[], bool]:
    """Whether the one token request waits at *gate* and every other caller waits for it."""
    return lambda: gate.arrived == 1 and slot.statistics().waiters == callers - 1


def _not_in_place(gate: Gate, slot: TokenSlot, callers: int) -> str:
    return (f"expected 1 token request at the gate and {callers - 1} callers waiting for it "
            f"(waited up to {DEADLINE} s); got {gate.arrived} and {slot.statistics()}")


def contend(server: Emulator, slot: TokenSlot, calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run each of *calls* in a thread of its own, all needing a token at once; their results
    (or exceptions), in order.

    The token request is held at a gate until every other caller waits for it, then let
    through: they overlap by construction.
    """
    gate = server.gate(limit=DEADLINE)
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DEADLINE
    in_place = _in_place(gate, slot, len(calls))
    while not in_place() and gate.arrived < 2 and time.monotonic() < deadline:
        time.sleep(0.002)  # polling the condition, not ordering anything
    failure = None if in_place() else _not_in_place(gate, slot, len(calls))
    gate.open()
    for thread in threads:
        thread.join(max(0.0, deadline + DEADLINE - time.monotonic()))
    assert failure is None, failure
    assert not any(thread.is_alive() for thread in threads), "callers still running"
    return results


async def acontend(
    server: Emulator, slot: TokenSlot, calls: Sequence[Callable[[], Awaitable[Any]]]
) -> list[Any]:
    """:func:`contend` for tasks: each of *calls* in a task of its own."""
    gate = server.gate(limit=DEADLINE)
    results: list[Any] = [None] * len(calls)

    async def run(i: int) -> None:
        try:
            results[i] = await calls[i]()
        except Exception as exc:
            results[i] = exc

    in_place = _in_place(gate, slot, len(calls))
    failure = None
    with anyio.fail_after(2 * DEADLINE):
        async with anyio.create_task_group() as tasks:
            for i in range(len(calls)):
                tasks.start_soon(run, i)
            with anyio.move_on_after(DEADLINE):
                while not in_place() and gate.arrived < 2:
                    await anyio.sleep(0.002)  # polling the condition
            failure = None if in_place() else _not_in_place(gate, slot, len(calls))
            gate.open()
    assert failure is None, failure
    return results
