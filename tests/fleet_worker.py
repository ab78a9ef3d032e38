"""A fleet of processes that need a token at once, through one shared cache: for the tests
(tests/test_caches.py) and the benchmarks (benchmarks/fleet.py). Both sides are here: the
worker, one process of a fleet, run as a script, and :class:`Fleet`, the controller's side.

Usage of the worker: ``python fleet_worker.py DIRECTORY INDEX``. It reads
``DIRECTORY/spec.json`` (a :class:`Spec`) and builds one auth object with the spec's cache
(``None``: the default memory cache) and the spec's callers: threads, each with a
``requests.Session`` of its own (mode ``"threads"``), or asyncio tasks sharing one
``httpx.AsyncClient`` (mode ``"async"``); then it touches ``ready-INDEX``. For each wave *w*
its callers wait until ``go-w`` appears, are released together (a barrier), make one API
request each, and once a refresh ahead they started has ended too (as it would in a process
living on), the process writes what they got to ``done-w-INDEX.json``:
``{"callers": n, "ok": k, "errors": {kind: count}}``, where a kind is an exception's name,
``HTTP <status>``, ``Timeout`` or ``no go signal``. Every wait is bounded: a worker whose
controller went away gives up and exits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import httpx
    import requests

    from oauth_cc_auth.requests import ClientCredentialsAuth

__all__ = ["Fleet", "FleetError", "Spec"]

WORKER = Path(__file__).resolve()
#: How long a worker waits for a go signal, a barrier, an API request.
_TIMEOUT = 60.0
_POLL = 0.002
#: How long the controller waits for the workers to exit once they are done.
_EXIT_TIMEOUT = 10.0

Result = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Spec:
    """What every worker of a fleet does; ``spec.json`` in the fleet's directory."""

    token_url: str
    #: The API each caller requests once per wave.
    url: str
    client_id: str | int
    client_secret: str | None
    #: More keyword arguments of the auth object (the emulator client's ``options()``).
    options: dict[str, Any]
    #: A cache URL, or ``None`` for the default memory cache.
    cache: str | None
    #: Threads or tasks per process.
    callers: int
    mode: Literal["threads", "async"] = "threads"
    waves: int = 1

    def auth_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"token_url": self.token_url, **self.options}
        if self.cache is not None:
            options["cache"] = self.cache
        return options


def _ready(directory: Path, index: int) -> Path:
    return directory / f"ready-{index}"


def _go(directory: Path, wave: int) -> Path:
    return directory / f"go-{wave}"


def _done(directory: Path, wave: int, index: int) -> Path:
    return directory / f"done-{wave}-{index}.json"


def _stderr(directory: Path, index: int) -> Path:
    return directory / f"err-{index}.txt"


# -- the controller's side -------------------------------------------------------------------------


class FleetError(RuntimeError):
    """The fleet could not be run (a worker failed to start or to finish a wave)."""


class Fleet:
    """*processes* workers doing *spec*, with their files in *directory* (which should be
    private: the spec holds the client secret). Started on entering; on leaving, the workers
    are given time to exit by themselves, or killed at once if the block raised."""

    def __init__(self, directory: Path, spec: Spec, processes: int) -> None:
        self.directory, self.spec, self.processes = directory, spec, processes
        self.workers: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Fleet:
        spec = json.dumps(dataclasses.asdict(self.spec))
        (self.directory / "spec.json").write_text(spec, encoding="utf-8")
        try:
            for i in range(self.processes):
                with _stderr(self.directory, i).open("wb") as err:
                    self.workers.append(
                        subprocess.Popen(  # noqa: S603 - this interpreter, this script
                            [sys.executable, str(WORKER), str(self.directory), str(i)],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=err,
                        )
                    )
        except BaseException:
            self.stop(wait=False)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self.stop(wait=kind is None)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every worker has started (built its auth object and callers)."""
        paths = [_ready(self.directory, i) for i in range(self.processes)]
        self._wait(paths, timeout, "start")

    def go(self, wave: int = 0) -> None:
        """Release the callers of *wave*."""
        _go(self.directory, wave).touch()

    def wait_done(self, wave: int = 0, timeout: float = 120.0, what: str = "") -> list[Result]:
        """What the callers of each worker got in *wave*, once every worker has reported it
        (*what*: the wave, as an error names it)."""
        paths = [_done(self.directory, wave, i) for i in range(self.processes)]
        self._wait(paths, timeout, what or f"finish wave {wave}")
        return [json.loads(path.read_text(encoding="utf-8")) for path in paths]

    def stop(self, *, wait: bool) -> list[int]:
        """Let the workers exit (if *wait*, for a while), kill the ones that do not, and
        return their exit statuses."""
        deadline = time.monotonic() + (_EXIT_TIMEOUT if wait else 0.0)
        for worker in self.workers:
            try:
                worker.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(_EXIT_TIMEOUT)
        return [worker.returncode for worker in self.workers]

    def _wait(self, paths: list[Path], timeout: float, what: str) -> None:
        """Wait until worker *i* has made ``paths[i]``, for every *i*."""
        deadline = time.monotonic() + timeout
        while not all(path.exists() for path in paths):
            # A worker writes its file before it exits: one that exited without it failed.
            dead = [
                i
                for i, worker in enumerate(self.workers)
                if worker.poll() is not None and not paths[i].exists()
            ]
            if dead:
                # The last line of its stderr: the exception, if it raised one.
                err = _stderr(self.directory, dead[0]).read_text(encoding="utf-8", errors="replace")
                status = f"exit status {self.workers[dead[0]].returncode}"
                last = err.strip().splitlines()[-1:] or [status]
                raise FleetError(f"worker {dead[0]} exited before {what}: {last[0]}")
            if time.monotonic() > deadline:
                raise FleetError(f"the fleet did not {what} within {timeout:g} s")
            time.sleep(_POLL)


# -- the worker ------------------------------------------------------------------------------------


def _write(path: Path, data: object) -> None:
    """Write JSON so that the reader never sees half of it."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, path)


def _wait_for(path: Path) -> bool:
    deadline = time.monotonic() + _TIMEOUT
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL)
    return True


class _Tally:
    """What the callers of one wave got: statuses, and errors by kind."""

    def __init__(self, callers: int) -> None:
        self.callers = callers
        self.statuses: collections.Counter[int] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def status(self, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1

    def error(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.errors[kind] += n

    def result(self) -> Result:
        for status, n in self.statuses.items():
            if status != 200:
                self.errors[f"HTTP {status}"] += n
        return {"callers": self.callers, "ok": self.statuses[200], "errors": dict(self.errors)}


def _thread_wave(
    go: Path, sessions: list[requests.Session], url: str, auth: ClientCredentialsAuth
) -> Result:
    """One API request per thread, all released together once *go* exists."""
    barrier = threading.Barrier(len(sessions) + 1)
    tally = _Tally(len(sessions))

    def one(session: requests.Session) -> None:
        try:
            barrier.wait(_TIMEOUT)
        except threading.BrokenBarrierError:
            tally.error("no go signal")
            return
        try:
            status = session.get(url, auth=auth, timeout=_TIMEOUT).status_code
        except Exception as exc:
            tally.error(type(exc).__name__)
            return
        tally.status(status)

    threads = [threading.Thread(target=one, args=(s,), daemon=True) for s in sessions]
    for thread in threads:
        thread.start()
    if _wait_for(go):
        with contextlib.suppress(threading.BrokenBarrierError):  # the threads count it
            barrier.wait(_TIMEOUT)
    else:
        barrier.abort()
    deadline = time.monotonic() + _TIMEOUT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = sum(thread.is_alive() for thread in threads)
    if hung:
        tally.error("Timeout", hung)
    return tally.result()


def _threads(spec: Spec, directory: Path, index: int) -> None:
    import requests

    from oauth_cc_auth.requests import ClientCredentialsAuth
    from oauth_cc_auth.testing import wait_for_refresh

    auth = ClientCredentialsAuth(spec.client_id, spec.client_secret, **spec.auth_options())
    sessions = [requests.Session() for _ in range(spec.callers)]
    for session in sessions:
        session.trust_env = False
    try:
        _ready(directory, index).touch()
        for wave in range(spec.waves):
            result = _thread_wave(_go(directory, wave), sessions, spec.url, auth)
            # A token due for refresh is refreshed in the background: the wave is over once
            # that refresh is, as a process living on would let it end (close() stops it).
            wait_for_refresh(auth, _TIMEOUT)
            _write(_done(directory, wave, index), result)
    finally:
        for session in sessions:
            session.close()
        auth.close()


async def _task_wave(go: Path, client: httpx.AsyncClient, url: str, n: int) -> Result:
    """One API request per task, all released together once *go* exists."""
    tally = _Tally(n)
    if not await asyncio.to_thread(_wait_for, go):
        tally.error("no go signal", n)
        return tally.result()
    barrier = asyncio.Barrier(n)

    async def one() -> None:
        try:
            async with asyncio.timeout(_TIMEOUT):
                await barrier.wait()
                status = (await client.get(url)).status_code
        except TimeoutError:
            tally.error("Timeout")
        except Exception as exc:
            tally.error(type(exc).__name__)
        else:
            tally.status(status)

    await asyncio.gather(*(one() for _ in range(n)))
    return tally.result()


async def _tasks(spec: Spec, directory: Path, index: int) -> None:
    import httpx

    from oauth_cc_auth.httpx import ClientCredentialsAuth
    from oauth_cc_auth.testing import await_refresh

    auth = ClientCredentialsAuth(spec.client_id, spec.client_secret, **spec.auth_options())
    try:
        async with httpx.AsyncClient(auth=auth, timeout=_TIMEOUT, trust_env=False) as client:
            _ready(directory, index).touch()
            for wave in range(spec.waves):
                result = await _task_wave(_go(directory, wave), client, spec.url, spec.callers)
                await await_refresh(auth, _TIMEOUT)  # as for threads
                _write(_done(directory, wave, index), result)
    finally:
        await auth.aclose()


def main(argv: list[str]) -> int:
    directory, index = Path(argv[1]), int(argv[2])
    spec = Spec(**json.loads((directory / "spec.json").read_text(encoding="utf-8")))
    if spec.mode == "threads":
        _threads(spec, directory, index)
    else:
        asyncio.run(_tasks(spec, directory, index))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
