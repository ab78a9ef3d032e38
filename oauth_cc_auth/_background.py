"""Refresh ahead in the background (DESIGN §7 "Renewal"): where the token flow's
:class:`~oauth_cc_auth._actions.Spawn` runs.

A token due for refresh but still valid is served while one refresh runs: in a daemon thread
for sync callers, in a task of the running asyncio loop for async ones. trio has no place for
work that outlives the call without a nursery of the caller's, so there the flow runs it
inline (the first caller refreshes, the others keep the valid token).

Each auth object has a :class:`Background`; its ``close()`` / ``aclose()`` stops the work it
started: a thread's exchange in progress has its socket shut (``_limits.Interrupter``) and
its sleeps cut short, a task is cancelled. Stopped work ends its flight without a token, so
whoever waits for it tries again. A daemon thread never keeps the interpreter from exiting.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from oauth_cc_auth._actions import Spawn, TransportFailure
from oauth_cc_auth._drivers import Spawner, drive_async, run_sync
from oauth_cc_auth._fork import reset_in_child
from oauth_cc_auth._limits import Interrupter
from oauth_cc_auth._messages import TokenHTTPResponse, TokenRequest
from oauth_cc_auth._token_cache import TokenCache
from oauth_cc_auth.errors import AuthError

if TYPE_CHECKING:
    import asyncio  # imported where used: sync users never load it

__all__ = ["Background"]

logger = logging.getLogger("oauth_cc_auth")

Send = Callable[[TokenRequest], TokenHTTPResponse | TransportFailure]
AsyncSend = Callable[[TokenRequest], Awaitable[TokenHTTPResponse | TransportFailure]]
#: Opens what a background task sends its token requests with: *send*, and what closes it.
AsyncSender = Callable[[], tuple[AsyncSend, Callable[[], Awaitable[None]] | None]]

#: How long ``close()`` waits for a stopped thread to end (its socket shut, at once).
STOP_WAIT = 2.0


class _Stopped(BaseException):
    """Raised in a stopped background thread to leave its flow (its flight then ends
    without a token): not an error."""


class Background:
    """The background refreshes one auth object started, and their stopping."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._interrupter = Interrupter()
        self._threads: set[threading.Thread] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        reset_in_child(self)

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's threads and tasks are not the child's."""
        self._lock = threading.Lock()
        self._interrupter = Interrupter()
        self._threads = set()
        self._tasks = set()

    @property
    def running(self) -> int:
        """How many background refreshes are running (for tests)."""
        with self._lock:
            return len(self._threads) + sum(
                not task.done() and not task.get_loop().is_closed() for task in self._tasks
            )

    # -- threads --------------------------------------------------------------------------------

    def in_thread(self, send: Send) -> Spawner:
        """A spawner running each work in a daemon thread, its token requests sent with
        *send* (which must work from any thread)."""

        def spawn(action: Spawn) -> bool:
            with self._lock:
                interrupter = self._interrupter
                thread = threading.Thread(
                    target=self._run_thread, args=(action, send, interrupter),
                    name="oauth_cc_auth refresh", daemon=True,
                )
                self._threads.add(thread)
            try:
                thread.start()
            except RuntimeError:  # no thread to be had (interpreter shutting down)
                with self._lock:
                    self._threads.discard(thread)
                return False
            return True

        return spawn

    def _run_thread(self, action: Spawn, send: Send, interrupter: Interrupter) -> None:
        stopped = interrupter.interrupted

        def guarded_send(request: TokenRequest) -> TokenHTTPResponse | TransportFailure:
            if stopped.is_set():
                raise _Stopped
            with interrupter.installed():
                outcome = send(request)
            if stopped.is_set():
                raise _Stopped
            return outcome

        def sleep(seconds: float) -> None:
            if stopped.wait(seconds):
                raise _Stopped

        try:
            run_sync(action.work, guarded_send, sleep)
        except _Stopped:
            logger.debug("background token refresh stopped by close()")
        except AuthError as exc:  # the token had expired meanwhile: its next caller fetches
            logger.warning("background token refresh failed: %s", exc)
        except Exception as exc:  # never the exception's text: it may hold a request
            logger.error("background token refresh failed: %s", type(exc).__name__)
        finally:
            action.abandon()
            with self._lock:
                self._threads.discard(threading.current_thread())

    # -- tasks ----------------------------------------------------------------------------------

    def in_task(self, sender: AsyncSender, shared: TokenCache | None) -> Spawner:
        """A spawner running each work in a task of the running asyncio loop, sending with
        what *sender* opens for it (closed when it ends); under another async library
        (trio), none: the flow runs the work inline."""

        def spawn(action: Spawn) -> bool:
            loop = _running_asyncio_loop()
            if loop is None:
                return False
            task = loop.create_task(self._run_task(action, sender, shared),
                                    name="oauth_cc_auth refresh")
            # A loop closed without cancelling its tasks (run_until_complete, then close)
            # never runs this one again: its flight is then ended by the next caller.
            action.flight.alive = lambda: not loop.is_closed()
            with self._lock:
                self._tasks.add(task)
                # Forget the tasks of loops closed without running them to their end.
                self._tasks -= {t for t in self._tasks if t.get_loop().is_closed()}
            task.add_done_callback(self._task_done(action))
            return True

        return spawn

    def _task_done(self, action: Spawn) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            action.abandon()  # also for a task cancelled before it started
            with self._lock:
                self._tasks.discard(task)

        return done

    @staticmethod
    async def _run_task(action: Spawn, sender: AsyncSender, shared: TokenCache | None) -> None:
        send, cleanup = sender()
        try:
            await drive_async(action.work, send, shared)
        except AuthError as exc:  # the token had expired meanwhile: its next caller fetches
            logger.warning("background token refresh failed: %s", exc)
        except Exception as exc:  # never the exception's text: it may hold a request
            logger.error("background token refresh failed: %s", type(exc).__name__)
        finally:
            if cleanup is not None:
                import anyio

                with anyio.CancelScope(shield=True):
                    await cleanup()

    # -- waiting and stopping -------------------------------------------------------------------

    def join(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for the background threads to end (tasks are
        awaited with :meth:`ajoin`); whether none runs."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = [t for t in self._threads if t is not threading.current_thread()]
            if not threads:
                return True
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                with self._lock:
                    return not self._threads

    async def ajoin(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for the background tasks of the running loop and
        the background threads to end; whether none runs."""
        import anyio
        import anyio.to_thread

        loop = _running_asyncio_loop()
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                tasks = [task for task in self._tasks if task.get_loop() is loop]
            if not tasks:
                break
            import asyncio

            await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return False
        return await anyio.to_thread.run_sync(
            self.join, max(0.0, deadline - time.monotonic())
        )


    def stop(self) -> None:
        """Stop every background refresh: threads interrupted and waited for (briefly),
        tasks cancelled (in their own loops). Refreshes started later run normally."""
        with self._lock:
            interrupter, self._interrupter = self._interrupter, Interrupter()
            threads = list(self._threads)
            tasks = list(self._tasks)
        interrupter.interrupt()
        for task in tasks:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                task.get_loop().call_soon_threadsafe(task.cancel)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(STOP_WAIT)

    async def astop(self) -> None:
        """:meth:`stop`, and wait for the cancelled tasks of the running loop to end."""
        loop = _running_asyncio_loop()
        with self._lock:
            running = [task for task in self._tasks if task.get_loop() is loop]
        self.stop()
        if running:
            import asyncio

            await asyncio.wait(running, timeout=STOP_WAIT)


def _running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop; ``None`` under another async library (trio) or none."""
    try:
        import sniffio

        if sniffio.current_async_library() != "asyncio":
            return None
        import asyncio

        return asyncio.get_running_loop()
    except (ImportError, RuntimeError):  # sniffio.AsyncLibraryNotFoundError is one
        return None
