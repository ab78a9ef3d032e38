"""The emulator checks requests as each provider documents, and its controls work."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import requests

import oauth_cc_auth
from oauth_cc_auth import MemoryCache
from oauth_cc_auth.requests import ClientCredentialsAuth
from oauth_cc_auth.testing import EmulatedClient, Emulator, FakeClock

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def emulator() -> Any:
    with Emulator() as emu:
        yield emu


def auth_for(emu: Emulator, provider: str, **options: Any) -> ClientCredentialsAuth:
    client = emu.client(provider)
    secret = options.pop("client_secret", client.client_secret)
    return ClientCredentialsAuth(
        client.client_id, secret, token_url=emu.token_url(provider), cache=MemoryCache(),
        backoff=0, **{**client.options(), **options},
    )


@pytest.mark.parametrize("provider", ["fcc_finance", "fincalc", "figure", "rfc6749"])
def test_each_provider_end_to_end(emulator: Emulator, provider: str) -> None:
    auth = auth_for(emulator, provider)
    for _ in range(3):
        response = requests.get(emulator.resource_url(provider), auth=auth, timeout=10)
        assert response.status_code == 200
        assert response.json()["provider"] == provider
    assert emulator.token_requests[provider] == 1
    assert emulator.resource_requests[provider] == 3
    # A token of one provider is no good at another's resource.
    other = "figure" if provider != "figure" else "fincalc"
    token = auth.get_token().access_token
    stray = requests.get(emulator.resource_url(other), timeout=10,
                         headers={"Authorization": f"Bearer {token}"})
    assert stray.status_code == 401
    auth.close()


def test_fcc_refuses_json(emulator: Emulator) -> None:
    client = emulator.client("fcc_finance")
    response = requests.post(emulator.token_url("fcc_finance"), timeout=10, json={
        "grant_type": "client_credentials", "client_id": client.client_id,
        "client_secret": client.client_secret})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("body", "description"),
    [
        ({"grant_type": "client_credentials", "client_id": 12345,
          "client_secret": "fincalc-secret-0123456789", "email_address": "demo@example.com"},
         "missing a required parameter: scope"),
        ({"grant_type": "client_credentials", "client_id": 12345,
          "client_secret": "fincalc-secret-0123456789", "scope": "api_scope"},
         "missing a required parameter: email_address"),
        ({"grant_type": "client_credentials", "client_id": 12345,
          "client_secret": "fincalc-secret-0123456789", "scope": "api_scope",
          "email_address": "someone-else@example.com"},
         "credentials are invalid"),
    ],
)
def test_fincalc_failure_envelopes(
    emulator: Emulator, body: dict[str, Any], description: str
) -> None:
    response = requests.post(emulator.token_url("fincalc"), json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert description in response.json()["message"]["description"]


def test_fincalc_refuses_a_form(emulator: Emulator) -> None:
    response = requests.post(emulator.token_url("fincalc"), timeout=10, data={
        "grant_type": "client_credentials", "client_id": "12345", "scope": "api_scope",
        "client_secret": "fincalc-secret-0123456789", "email_address": "demo@example.com"})
    assert response.status_code == 400
    assert "application/json" in response.json()["message"]["description"]


def test_figure_requires_a_form_and_answers_a_bare_token(emulator: Emulator) -> None:
    client = emulator.client("figure")
    fields = {"grant_type": "client_credentials", "client_id": client.client_id,
              "client_secret": client.client_secret}
    assert requests.post(emulator.token_url("figure"), json=fields, timeout=10).status_code == 400
    ok = requests.post(emulator.token_url("figure"), data=fields, timeout=10)
    assert ok.status_code == 200
    assert list(ok.json()) == ["access_token"]


@pytest.mark.parametrize("provider", ["fcc_finance", "fincalc", "figure", "rfc6749"])
def test_wrong_secret_is_refused(emulator: Emulator, provider: str) -> None:
    auth = auth_for(emulator, provider, client_secret="not-the-secret")
    with pytest.raises(oauth_cc_auth.TokenRequestError) as info:
        requests.get(emulator.resource_url(provider), auth=auth, timeout=10)
    assert info.value.status_code == (400 if provider == "fincalc" else 401)
    assert "not-the-secret" not in str(info.value)
    assert emulator.resource_requests[provider] == 0


def test_registered_clients_and_basic_auth(emulator: Emulator) -> None:
    emulator.register_client(EmulatedClient("rfc6749", "mine", "my-secret"))
    auth = ClientCredentialsAuth("mine", "my-secret", token_url=emulator.token_url("rfc6749"),
                                 cache=MemoryCache(), auth_method="client_secret_basic")
    assert requests.get(emulator.resource_url("rfc6749"), auth=auth, timeout=10).ok


def test_lifetime_and_expiry_on_the_emulators_clock() -> None:
    clock = FakeClock()
    with Emulator(clock=clock) as emu:
        emu.set_lifetime("rfc6749", 30)
        client = emu.client("rfc6749")
        token = requests.post(emu.token_url("rfc6749"), timeout=10, data={
            "grant_type": "client_credentials", "client_id": client.client_id,
            "client_secret": client.client_secret}).json()
        assert token["expires_in"] == 30
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert requests.get(emu.resource_url("rfc6749"), headers=headers, timeout=10).ok
        clock.advance(30)
        expired = requests.get(emu.resource_url("rfc6749"), headers=headers, timeout=10)
        assert expired.status_code == 401
        assert expired.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        missing = requests.get(emu.resource_url("rfc6749"), timeout=10)
        assert missing.status_code == 401


def test_revocation_is_recovered(emulator: Emulator) -> None:
    auth = auth_for(emulator, "fcc_finance")
    url = emulator.resource_url("fcc_finance")
    assert requests.get(url, auth=auth, timeout=10).ok
    emulator.revoke_all()
    response = requests.get(url, auth=auth, timeout=10)
    assert response.ok
    assert [r.status_code for r in response.history] == [401]
    assert emulator.token_requests["fcc_finance"] == 2


def test_faults_are_retried_and_counted(emulator: Emulator) -> None:
    emulator.fail_next(2, status=503)
    emulator.fail_next(1, status=429, retry_after="0")
    emulator.drop_next(1)
    auth = auth_for(emulator, "figure", max_retries=4)
    assert requests.get(emulator.resource_url("figure"), auth=auth, timeout=10).ok
    assert emulator.token_requests["figure"] == 5


def test_persistent_faults_end_in_token_endpoint_error(emulator: Emulator) -> None:
    emulator.drop_next(3)
    with httpx.Client() as client:
        from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth

        c = emulator.client("fincalc")
        auth = HttpxAuth(c.client_id, c.client_secret, token_url=emulator.token_url("fincalc"),
                         cache=MemoryCache(), backoff=0, max_retries=2, **c.options())
        with pytest.raises(oauth_cc_auth.TokenEndpointError, match="3 attempt"):
            client.get(emulator.resource_url("fincalc"), auth=auth)
    assert emulator.token_requests["fincalc"] == 3


def test_slow_answers(emulator: Emulator) -> None:
    emulator.slow_next(1, 0.5)
    auth = auth_for(emulator, "rfc6749", timeout=0.2, max_retries=1)
    assert requests.get(emulator.resource_url("rfc6749"), auth=auth, timeout=10).ok
    assert emulator.token_requests["rfc6749"] == 2  # the slow one timed out, then a retry


def test_counters_reset_and_unknown_paths(emulator: Emulator) -> None:
    requests.get(emulator.resource_url("figure"), timeout=10)
    assert emulator.resource_requests["figure"] == 1
    emulator.reset_counters()
    assert emulator.resource_requests["figure"] == 0
    response = requests.get(emulator.url + "/nowhere", timeout=10)
    assert response.status_code == 404
    assert json.loads(response.content) == {"error": "not_found"}


def test_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Emulator("0.0.0.0")  # noqa: S104
