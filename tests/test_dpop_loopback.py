"""DPoP over loopback sockets against the emulator, which verifies every proof (signature,
``htm``, ``htu``, ``iat``, one-time ``jti``, ``ath``, the token's key binding, nonces): every
flavour, server nonces at both endpoints, and fleets sharing a Redis cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import requests
from joserfc.jwk import ECKey

from oauth_cc_auth import MemoryCache
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import EmulatedClient, Emulator
from tests.fleet_worker import Fleet, Spec
from tests.test_caches import running_redis
from tests.test_dpop import ath, read_proof

CLIENT = EmulatedClient("rfc6749", "dpop-client", "dpop-secret-0123456789", dpop_bound=True)
REQUESTS = 20
DEADLINE = 20.0


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        emu.register_client(CLIENT)
        yield emu


def auth_for(emulator: Emulator, cls: Any, **options: Any) -> Any:
    return cls(CLIENT.client_id, CLIENT.client_secret, token_url=emulator.token_url("rfc6749"),
               cache=MemoryCache(), timeout=DEADLINE, **{**CLIENT.options(), **options})


def run_sync(flavour: str, auth: Any, url: str, n: int, body: bytes | None) -> list[int]:
    method = "GET" if body is None else "POST"
    if flavour == "requests":
        with requests.Session() as session:
            session.auth = auth
            return [session.request(method, url, data=body, timeout=DEADLINE).status_code
                    for _ in range(n)]
    lib = httpx if flavour == "httpx-sync" else httpx2
    with lib.Client(auth=auth, timeout=DEADLINE) as client:
        return [client.request(method, url, content=body).status_code for _ in range(n)]


def run_async(flavour: str, auth: Any, url: str, n: int, body: bytes | None) -> list[int]:
    lib = httpx if flavour == "httpx-async" else httpx2
    method = "GET" if body is None else "POST"

    async def main() -> list[int]:
        with anyio.fail_after(DEADLINE):
            async with lib.AsyncClient(auth=auth, timeout=DEADLINE) as client:
                return [(await client.request(method, url, content=body)).status_code
                        for _ in range(n)]

    return anyio.run(main)


FLAVOURS: dict[str, tuple[Any, Callable[..., list[int]]]] = {
    "requests": (RequestsAuth, run_sync),
    "httpx-sync": (HttpxAuth, run_sync),
    "httpx-async": (HttpxAuth, run_async),
    "httpx2-sync": (Httpx2Auth, run_sync),
    "httpx2-async": (Httpx2Auth, run_async),
}


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
class TestEveryFlavour:
    def test_twenty_requests_one_token(self, emulator: Emulator, flavour: str) -> None:
        cls, run = FLAVOURS[flavour]
        auth = auth_for(emulator, cls)
        url = emulator.resource_url("rfc6749")
        assert run(flavour, auth, url + "?page=1", REQUESTS, None) == [200] * REQUESTS
        assert emulator.token_requests["rfc6749"] == 1
        assert auth.token.token_type == "DPoP"
        sent = emulator.received_at("resource")
        claims = [read_proof(r.headers["dpop"])[1] for r in sent]
        assert len({c["jti"] for c in claims}) == REQUESTS
        assert {c["ath"] for c in claims} == {ath(auth.token.access_token)}
        assert {c["htu"] for c in claims} == {url}
        assert {r.headers["authorization"] for r in sent} == {auth.token.authorization}
        # Nothing refused: no proof replayed, none stale, none for another key or URL.
        assert not emulator.dpop_refusals

    def test_nonces_at_both_endpoints_one_re_send_each(
        self, emulator: Emulator, flavour: str
    ) -> None:
        token_nonce = emulator.demand_dpop_nonce("token")
        api_nonce = emulator.demand_dpop_nonce("resource")
        cls, run = FLAVOURS[flavour]
        auth = auth_for(emulator, cls)
        url = emulator.resource_url("rfc6749")
        assert run(flavour, auth, url, 3, b"payload") == [200] * 3
        assert emulator.dpop_refusals["use_dpop_nonce"] == 2
        assert emulator.dpop_refusals["invalid_dpop_proof"] == 0
        token_requests = emulator.received_at("token")
        assert len(token_requests) == 2
        assert read_proof(token_requests[1].headers["dpop"])[1]["nonce"] == token_nonce
        sent = emulator.received_at("resource")
        assert len(sent) == 4  # the first request twice, then one each
        assert [r.body for r in sent] == [b"payload"] * 4
        # Token endpoint and API share the emulator's origin, so the nonce remembered for
        # it is the token endpoint's until the API gives its own.
        assert [read_proof(r.headers["dpop"])[1]["nonce"] for r in sent] == [
            token_nonce, api_nonce, api_nonce, api_nonce]
        assert emulator.token_requests["rfc6749"] == 2  # no renewal: the nonce re-send only

    def test_rotated_api_nonce_is_picked_up(self, emulator: Emulator, flavour: str) -> None:
        emulator.demand_dpop_nonce("resource")
        cls, run = FLAVOURS[flavour]
        auth = auth_for(emulator, cls)
        url = emulator.resource_url("rfc6749")
        assert run(flavour, auth, url, 2, None) == [200] * 2
        emulator.demand_dpop_nonce("resource")  # a new nonce: the one we hold is stale
        assert run(flavour, auth, url, 2, None) == [200] * 2
        assert emulator.dpop_refusals["use_dpop_nonce"] == 2
        assert emulator.dpop_refusals["invalid_dpop_proof"] == 0
        assert emulator.token_requests["rfc6749"] == 1


def test_a_bearer_token_at_a_dpop_bound_resource_is_refused(emulator: Emulator) -> None:
    # The emulator is strict: the DPoP-bound token without its proof is no Bearer token.
    auth = auth_for(emulator, RequestsAuth)
    token = auth.get_token()
    url = emulator.resource_url("rfc6749")
    bare = requests.get(url, headers={"Authorization": token.authorization}, timeout=DEADLINE)
    assert bare.status_code == 401
    as_bearer = requests.get(url, headers={"Authorization": f"Bearer {token.access_token}"},
                             timeout=DEADLINE)
    assert as_bearer.status_code == 401


@pytest.mark.slow
class TestFleet:
    """Processes sharing a Redis cache share a DPoP-bound token only if they share its key."""

    def fleet(self, emulator: Emulator, tmp_path: Path, cache: str, **options: Any) -> None:
        spec = Spec(
            token_url=emulator.token_url("rfc6749"), url=emulator.resource_url("rfc6749"),
            client_id=CLIENT.client_id, client_secret=CLIENT.client_secret,
            options={**CLIENT.options(), **options}, cache=cache, callers=4,
        )
        with Fleet(tmp_path, spec, 4) as fleet:
            fleet.wait_ready()
            fleet.go()
            results = fleet.wait_done()
            assert fleet.stop(wait=True) == [0] * 4
        assert results == [{"callers": 4, "ok": 4, "errors": {}}] * 4
        assert not emulator.dpop_refusals

    def test_a_shared_key_makes_one_token_for_the_fleet(
        self, emulator: Emulator, tmp_path: Path
    ) -> None:
        key = tmp_path / "dpop.pem"
        key.write_bytes(ECKey.generate_key("P-256", private=True).as_pem(private=True))
        key.chmod(0o600)
        with running_redis(tmp_path) as redis:
            self.fleet(emulator, tmp_path, redis.url, dpop=None, dpop_key=str(key))
        assert emulator.token_requests["rfc6749"] == 1

    def test_keys_of_their_own_make_a_token_each(
        self, emulator: Emulator, tmp_path: Path
    ) -> None:
        with running_redis(tmp_path) as redis:
            self.fleet(emulator, tmp_path, redis.url)  # dpop=True: a key per process
        assert emulator.token_requests["rfc6749"] == 4
