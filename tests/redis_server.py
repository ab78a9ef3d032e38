"""A redis-server of our own, for the tests (tests/test_caches.py) and the benchmarks
(benchmarks/fleet.py, benchmarks/timing.py): on a free port bound to 127.0.0.1 only, in a
directory of the caller's, with nothing written to disk.

``RedisServer(directory)`` raises :class:`RedisNotInstalled` when there is no
``redis-server`` on ``PATH``; ``start()`` raises :class:`RedisUnavailable` when it cannot get
one to answer (the tests turn the first into a failure that says how to install one; the
benchmarks show either reason as "n/a"). ``with redis_server() as url:`` runs one in a
temporary directory for the block, and stops it however the block ends.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["RedisNotInstalled", "RedisServer", "RedisUnavailable", "free_port", "redis_server"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
#: Tries to start, each on a new free port (another process may take one meanwhile).
_ATTEMPTS = 3
#: Loopback only, nothing written to disk.
_OPTIONS = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")


class RedisUnavailable(Exception):
    """No redis-server could be started; the message says why."""


class RedisNotInstalled(RedisUnavailable):
    """There is no ``redis-server`` on ``PATH``."""


def free_port() -> int:
    """A 127.0.0.1 port that nothing listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ready(process: subprocess.Popen[bytes], url: str, redis: Any) -> bool:
    """Whether the server answers PING before the start timeout (``False``: it exited, say
    because another process took its port in the meantime, or never answered)."""
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    deadline = time.monotonic() + _START_TIMEOUT
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                time.sleep(0.02)
        return False
    finally:
        client.close()


class RedisServer:
    """A real redis-server on a free loopback port, with *directory* as its working directory.

    ``start()`` returns once it answers PING; ``stop()`` may be called any number of times.
    As a context manager, started on entry and stopped on exit.
    """

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisNotInstalled("redis-server not installed")
        self.binary, self.directory = binary, directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        try:
            import redis
        except ImportError:
            raise RedisUnavailable("redis-py not installed: pip install redis") from None
        for attempt in range(_ATTEMPTS):
            if attempt:
                self.port = free_port()
            self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
                [self.binary, "--port", str(self.port), "--dir", str(self.directory), *_OPTIONS],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            ready = False
            try:
                ready = _ready(self.process, self.url, redis)
            finally:
                if not ready:
                    self.stop()
            if ready:
                return
        raise RedisUnavailable("redis-server did not start")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(_STOP_TIMEOUT)
                return
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait(_STOP_TIMEOUT)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A running redis-server's URL, ``redis://127.0.0.1:<port>/0``, for the block, in a
    temporary directory."""
    with (
        tempfile.TemporaryDirectory(prefix="oauth-cc-redis-") as directory,
        RedisServer(Path(directory)) as server,
    ):
        yield server.url
