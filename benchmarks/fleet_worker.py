"""One process of the multi-process benchmark, started by :mod:`fleet`.

Usage: ``python fleet_worker.py DIRECTORY INDEX``. Reads ``DIRECTORY/spec.json``, builds one
``oauth_cc_auth.requests.ClientCredentialsAuth`` (with the spec's cache, or the default
memory cache) and a ``requests.Session`` per thread, then touches ``ready-INDEX``. For each
wave *w* its threads wait behind a barrier until ``go-w`` appears, make one API request each,
and the process writes what they got to ``done-w-INDEX.json``. Every wait is bounded: a
worker whose controller went away gives up and exits.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from oauth_cc_auth.requests import ClientCredentialsAuth

#: How long to wait for a go signal, a barrier, an API request.
_TIMEOUT = 60.0
_POLL = 0.002


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


def _wave(
    go: Path, sessions: list[requests.Session], url: str, auth: ClientCredentialsAuth
) -> dict[str, Any]:
    """One API request per thread, all released together once *go* exists."""
    barrier = threading.Barrier(len(sessions) + 1)
    lock = threading.Lock()
    statuses: collections.Counter[int] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()

    def one(session: requests.Session) -> None:
        try:
            barrier.wait(_TIMEOUT)
        except threading.BrokenBarrierError:
            with lock:
                errors["no go signal"] += 1
            return
        try:
            status = session.get(url, auth=auth, timeout=_TIMEOUT).status_code
        except Exception as exc:
            with lock:
                errors[type(exc).__name__] += 1
            return
        with lock:
            statuses[status] += 1

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
        errors["Timeout"] += hung
    for status, n in statuses.items():
        if status != 200:
            errors[f"HTTP {status}"] += n
    return {"callers": len(sessions), "ok": statuses[200], "errors": dict(errors)}


def main(argv: list[str]) -> int:
    directory, index = Path(argv[1]), int(argv[2])
    spec: dict[str, Any] = json.loads((directory / "spec.json").read_text(encoding="utf-8"))
    options: dict[str, Any] = {"token_url": spec["token_url"], **spec["options"]}
    if spec["cache"] is not None:
        options["cache"] = spec["cache"]
    auth = ClientCredentialsAuth(spec["client_id"], spec["client_secret"], **options)
    sessions = [requests.Session() for _ in range(spec["threads"])]
    for session in sessions:
        session.trust_env = False
    try:
        (directory / f"ready-{index}").touch()
        for wave in range(spec["waves"]):
            result = _wave(directory / f"go-{wave}", sessions, spec["url"], auth)
            _write(directory / f"done-{wave}-{index}.json", result)
    finally:
        for session in sessions:
            session.close()
        auth.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
