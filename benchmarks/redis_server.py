"""A redis-server of the benchmark's own: on a free loopback port, in a temporary directory.

``with redis_server() as url:`` starts one (no persistence, bound to 127.0.0.1) and stops it
on leaving, however the block ends. When there is none to be had it raises
:class:`RedisUnavailable` before the block, with the reason shown as "n/a" in the tables.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["RedisUnavailable", "redis_server"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_ATTEMPTS = 3
#: Loopback only, nothing written to disk.
_OPTIONS = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")


class RedisUnavailable(Exception):
    """No redis-server could be started; the message says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT)
            return
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(_STOP_TIMEOUT)


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


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A running redis-server's URL, ``redis://127.0.0.1:<port>/0``, for the block."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable("redis-server not installed")
    try:
        import redis
    except ImportError:
        raise RedisUnavailable("redis-py not installed: pip install redis") from None
    with tempfile.TemporaryDirectory(prefix="oauth-cc-bench-redis-") as directory:
        process: subprocess.Popen[bytes] | None = None
        try:
            for _ in range(_ATTEMPTS):
                port = _free_port()
                url = f"redis://127.0.0.1:{port}/0"
                process = subprocess.Popen(  # noqa: S603 - a fixed command line
                    [binary, "--port", str(port), "--dir", directory, *_OPTIONS],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                if _ready(process, url, redis):
                    break
                _stop(process)
                process = None
            if process is None:
                raise RedisUnavailable("redis-server did not start")
            yield url
        finally:
            if process is not None:
                _stop(process)
