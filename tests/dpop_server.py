"""A real DPoP (RFC 9449) authorization server that is not ours, on loopback: authgent-server.

For interoperability tests of DPoP. The server is `authgent-server
<https://pypi.org/project/authgent-server/>`_ (FastAPI, SQLite in memory), started as a
subprocess with ``sys.executable`` on a free port of 127.0.0.1. Its own code does everything
that matters:

* ``POST /register`` (RFC 7591, open registration) registers a confidential client for the
  ``client_credentials`` grant with ``client_secret_post`` or ``client_secret_basic`` and returns
  its generated ``client_id`` and ``client_secret``;
* ``POST /token`` authenticates the client, verifies a ``DPoP`` proof when one is sent
  (``DPoPService.verify_dpop_proof``: ``typ`` ``dpop+jwt``, ``alg`` ES256 only, an EC ``jwk``
  header, the signature, ``htm``, ``htu``, ``iat`` within 60 s, and, when the server requires
  DPoP, a server ``nonce``) and issues a JWT access token with ``cnf.jkt`` (the proof key's
  RFC 7638 thumbprint) and ``token_type`` ``DPoP``; without a proof, a ``Bearer`` token, unless
  the server requires DPoP (``require_dpop=True``: then a proof, and a nonce, are mandatory);
* ``POST /introspect`` (RFC 7662) says ``active`` and ``token_type`` (``DPoP`` when the token
  has ``cnf``).

What this module adds, as the glue a resource server would be (authgent has no DPoP-protected
API of its own):

* ``GET``/``POST /resource``: the token is checked with authgent's own
  ``TokenService.verify_and_check_blocklist`` (signature, issuer, expiry, revocation); a token
  with ``cnf.jkt`` must come as ``Authorization: DPoP <token>`` with one ``DPoP`` proof, which
  authgent's ``DPoPService.verify_dpop_proof`` checks against this request's method and URL, the
  token's hash (``ath``) and the bound key (``expected_jkt``), and, when the server requires
  DPoP, its nonce. A token without ``cnf`` must come as ``Bearer``. It answers 200
  ``{"ok": true, "client_id": ..., "token_type": "DPoP"|"Bearer", "jkt": ...}``, else 401
  with ``WWW-Authenticate: DPoP error="..."`` (or ``Bearer`` for an unbound token), plus a
  ``DPoP-Nonce`` header for ``use_dpop_nonce`` (RFC 9449 §7.1, §9).
* ``jti`` replay detection (authgent does not track ``jti``): a proof whose ``jti`` this server
  has seen before, at ``/token`` or ``/resource``, is refused (``invalid_dpop_proof``).
* A record of every ``/token`` and ``/resource`` request (``GET /_harness/records``): method,
  path, status, the ``Authorization`` scheme (never the credential), and the DPoP proof's
  header and claims as sent (decoded without verification).

Known quirks of authgent-server 0.3.x, kept as they are (a client must cope with them):
``use_dpop_nonce`` at ``/token`` comes as **401** (RFC 9449 §8 says 400) with
``WWW-Authenticate: DPoP ..., error="use_dpop_nonce"`` and the ``DPoP-Nonce`` header; a bad
proof at ``/token`` is 401 ``invalid_dpop_proof``; only ES256 proofs are accepted; a nonce is
asked for exactly when DPoP is required (``require_dpop=True``), at the token endpoint and (here)
at the resource alike, and it is the same value for both (an HMAC of a 5-minute time bucket).

::

    with DPoPServer() as server:
        client_id, secret = server.register()
        ...  # the client under test posts to server.token_url, then calls server.resource_url
        assert [r["status"] for r in server.records("/token")] == [200]

Run ``python tests/dpop_server.py [--require-dpop]`` to serve by hand: it prints the port.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["DPoPServer"]

#: Seconds: the server must be answering by then (it starts in about a second).
START_TIMEOUT = 30.0
#: Seconds: every HTTP call the harness itself makes.
HTTP_TIMEOUT = 10.0


class DPoPServer:
    """authgent-server in a subprocess on 127.0.0.1, with the resource described above.

    *require_dpop*: the server refuses token requests without a DPoP proof, and asks for a
    nonce at the token endpoint and at the resource. Otherwise DPoP is optional (a proof gets a
    DPoP-bound token, no proof a Bearer one) and no nonce is asked for.
    """

    def __init__(self, *, require_dpop: bool = False, access_token_ttl: int = 900) -> None:
        self.require_dpop = require_dpop
        self.access_token_ttl = access_token_ttl
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._log = Path(os.devnull)
        #: Seconds from starting the subprocess to the server answering.
        self.start_seconds = 0.0

    # -- URLs ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def resource_url(self) -> str:
        return f"{self.base_url}/resource"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> DPoPServer:
        started = time.monotonic()
        self._tmp = tempfile.TemporaryDirectory(prefix="dpop-server-")
        args = [sys.executable, str(Path(__file__).resolve()), "--ttl", str(self.access_token_ttl)]
        if self.require_dpop:
            args.append("--require-dpop")
        # authgent's settings come from AUTHGENT_* (and REDIS_URL), and from a ".env" in the
        # cwd: the child gets none of the caller's, and an empty folder as its cwd.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AUTHGENT_") and k != "REDIS_URL"}
        self._log = Path(self._tmp.name) / "server.log"
        with self._log.open("wb") as log:
            # stdout: the port, one line; then the child sends it to the log file as well, so
            # that no pipe can fill up and block the server.
            self._process = subprocess.Popen(  # noqa: S603  # our own script, no shell
                args, cwd=self._tmp.name, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=log,
            )
        try:
            self.port = int(self._read_line(started + START_TIMEOUT))
            self._wait_ready(started + START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def _read_line(self, deadline: float) -> str:
        assert self._process is not None
        assert self._process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            if not selector.select(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"authgent-server did not start in time{self._stderr()}")
        line = self._process.stdout.readline().decode().strip()
        if not line.isdigit():
            raise RuntimeError(f"authgent-server failed to start: {line!r}{self._stderr()}")
        return line

    def _wait_ready(self, deadline: float) -> None:
        while True:
            try:
                status, _ = self._call("GET", "/health", timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            assert self._process is not None
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"authgent-server is not answering{self._stderr()}")
            time.sleep(0.05)

    def _stderr(self) -> str:
        try:
            return ": " + self._log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> DPoPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what the tests use -------------------------------------------------------------------

    def register(self, method: str = "client_secret_post", name: str = "interop",
                 scope: str = "") -> tuple[str, str]:
        """Registers a confidential ``client_credentials`` client through RFC 7591; returns
        its ``(client_id, client_secret)``."""
        body = {
            "client_name": name,
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": method,
            "dpop_bound_access_tokens": True,
            "scope": scope,
        }
        status, answer = self._call("POST", "/register", json_body=body)
        if status != 201:
            raise RuntimeError(f"registration refused: {status} {answer}")
        return answer["client_id"], answer["client_secret"]

    def introspect(self, token: str) -> dict[str, Any]:
        """The server's RFC 7662 answer for *token*."""
        status, answer = self._call("POST", "/introspect", form={"token": token})
        if status != 200:
            raise RuntimeError(f"introspection failed: {status} {answer}")
        return dict(answer)

    def records(self, path: str | None = None) -> list[dict[str, Any]]:
        """The requests ``/token`` and ``/resource`` received, oldest first (only *path*'s if
        given): ``method``, ``path``, ``status``, ``scheme`` (of ``Authorization``),
        ``dpop_count`` (how many ``DPoP`` headers), ``proof_header``, ``proof_claims``."""
        status, answer = self._call("GET", "/_harness/records")
        if status != 200:
            raise RuntimeError(f"records: {status} {answer}")
        return [r for r in answer if path is None or r["path"] == path]

    def _call(self, method: str, path: str, *, json_body: Any = None,
              form: dict[str, str] | None = None, timeout: float = HTTP_TIMEOUT
              ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            from urllib.parse import urlencode

            data = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(  # noqa: S310  # http://127.0.0.1 only
            self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                body = error.read()
            try:
                return error.code, json.loads(body)
            except ValueError:
                return error.code, body.decode(errors="replace")


# -- the subprocess ---------------------------------------------------------------------------


def _b64url_json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _unverified(proof: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    try:
        header, claims, _ = proof.split(".")
        return _b64url_json(header), _b64url_json(claims)
    except (ValueError, TypeError):
        return None, None


def _serve(require_dpop: bool, ttl: int) -> None:  # pragma: no cover - runs in the child
    import secrets
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]

    os.environ.update({
        "AUTHGENT_SERVER_URL": f"http://127.0.0.1:{port}",
        "AUTHGENT_HOST": "127.0.0.1",
        "AUTHGENT_PORT": str(port),
        "AUTHGENT_DATABASE_URL": "sqlite+aiosqlite:///:memory:",
        "AUTHGENT_SECRET_KEY": secrets.token_hex(32),
        "AUTHGENT_REQUIRE_DPOP": "true" if require_dpop else "false",
        "AUTHGENT_REGISTRATION_POLICY": "open",
        "AUTHGENT_ACCESS_TOKEN_TTL": str(ttl),
        "AUTHGENT_TOKEN_RATE_LIMIT": "100000",
        "AUTHGENT_REGISTER_RATE_LIMIT": "100000",
    })

    import bcrypt
    import uvicorn
    from authgent_server import app as app_module
    from authgent_server.app import create_app
    from authgent_server.config import get_settings
    from authgent_server.dependencies import (
        get_db_session,
        get_dpop_service,
        get_token_service,
    )
    from authgent_server.errors import AuthgentError, UseDPoPNonce
    from authgent_server.services import client_service
    from fastapi import Depends, Request
    from fastapi.responses import JSONResponse
    from sqlalchemy.ext.asyncio import AsyncSession

    # bcrypt's cost for the registered clients' secrets: 4 rounds, not authgent's 12 (a quarter
    # of a second per token request). Only the work factor changes; the check is authgent's.
    def _hash_secret(secret: str) -> str:
        return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=4)).decode()

    client_service._hash_secret = _hash_secret
    # No background cleanup of expired rows: authgent's SQLite engine is one shared connection
    # (StaticPool), and its cleanup tasks, all started at once at startup, could interleave
    # their transactions with the first requests' (a client just registered was then not found).
    app_module._CLEANUP_INTERVALS.clear()

    app = create_app()
    settings = get_settings()
    records: list[dict[str, Any]] = []
    seen_jti: set[str] = set()

    def refusal(scheme: str, error: str, description: str, status: int,
                nonce: str | None = None) -> JSONResponse:
        www = f'{scheme} error="{error}", error_description="{description}"'
        if scheme == "DPoP":
            www += ', algs="ES256"'
        headers = {"WWW-Authenticate": www}
        if nonce is not None:
            headers["DPoP-Nonce"] = nonce
        return JSONResponse({"error": error, "error_description": description},
                            status_code=status, headers=headers)

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        path = request.url.path
        if path not in ("/token", "/resource"):
            return await call_next(request)
        proofs = request.headers.getlist("dpop")
        header, claims = _unverified(proofs[0]) if len(proofs) == 1 else (None, None)
        entry: dict[str, Any] = {
            "method": request.method,
            "path": path,
            "scheme": request.headers.get("authorization", "").partition(" ")[0] or None,
            "dpop_count": len(proofs),
            "proof_header": header,
            "proof_claims": claims,
        }
        records.append(entry)
        jti = claims.get("jti") if isinstance(claims, dict) else None
        if isinstance(jti, str) and jti in seen_jti:
            if path == "/token":
                response: Any = JSONResponse(
                    {"error": "invalid_dpop_proof",
                     "error_description": "DPoP proof jti replayed"}, status_code=400)
            else:
                response = refusal("DPoP", "invalid_dpop_proof", "DPoP proof jti replayed", 401)
        else:
            if isinstance(jti, str):
                seen_jti.add(jti)
            response = await call_next(request)
        entry["status"] = response.status_code
        return response

    async def resource(request: Request, db: AsyncSession = Depends(get_db_session)  # noqa: B008
                       ) -> Any:
        authorizations = request.headers.getlist("authorization")
        if len(authorizations) != 1:
            return refusal("DPoP", "invalid_request", "one Authorization header expected", 401)
        scheme, _, token = authorizations[0].partition(" ")
        scheme = scheme.lower()
        try:
            claims = await get_token_service().verify_and_check_blocklist(db, token.strip())
        except Exception:
            return refusal("DPoP" if scheme == "dpop" else "Bearer", "invalid_token",
                           "token invalid, expired or revoked", 401)
        cnf = claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        if jkt:
            if scheme != "dpop":
                return refusal("DPoP", "invalid_token", "DPoP-bound token sent as " + scheme, 401)
            proofs = request.headers.getlist("dpop")
            if len(proofs) != 1:
                return refusal("DPoP", "invalid_dpop_proof", "one DPoP proof expected", 401)
            try:
                get_dpop_service().verify_dpop_proof(
                    proof_jwt=proofs[0],
                    access_token=token.strip(),
                    http_method=request.method,
                    http_uri=str(request.url).split("?")[0],
                    expected_jkt=jkt,
                    require_nonce=settings.require_dpop,
                )
            except UseDPoPNonce as exc:
                return refusal("DPoP", "use_dpop_nonce", "DPoP nonce required", 401,
                               nonce=exc.dpop_nonce)
            except AuthgentError as exc:
                return refusal("DPoP", "invalid_dpop_proof", str(exc.detail), 401)
        elif scheme != "bearer":
            return refusal("Bearer", "invalid_token", "an unbound token is a Bearer token", 401)
        return {"ok": True, "client_id": claims.get("client_id"),
                "token_type": "DPoP" if jkt else "Bearer", "jkt": jkt}

    async def harness_records() -> Any:
        return records

    # This module's annotations are strings (``from __future__ import annotations``) naming
    # what only this function imports: FastAPI resolves them in the module's globals.
    resource.__annotations__ = {"request": Request, "db": AsyncSession, "return": Any}

    app.add_api_route("/resource", resource, methods=["GET", "POST"])
    app.add_api_route("/_harness/records", harness_records, methods=["GET"])

    print(port, flush=True)
    log = os.open("server.log", os.O_WRONLY | os.O_APPEND)
    os.dup2(log, 1)
    os.close(log)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            loop="asyncio", http="h11", ws="none")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":  # pragma: no cover
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--require-dpop", action="store_true")
    parser.add_argument("--ttl", type=int, default=900)
    arguments = parser.parse_args()
    _serve(arguments.require_dpop, arguments.ttl)
