"""The emulator serves each identity provider preset's token endpoint with its quirks: the real
preset providers fetch tokens from it over loopback, and what the presets refuse before
sending is refused by the emulator too (in process, :meth:`Emulator.handle`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from oauth_cc_auth.errors import TokenRequestError
from oauth_cc_auth.testing import Answered, Emulator
from oauth_cc_auth.testing._emulator import PRESET_SITES
from tests.test_emulator import auth_for

PRESETS = ["auth0", "entra", "okta", "keycloak", "cognito", "salesforce", "pingone", "zitadel"]
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def served() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


def refused(emu: Emulator, preset: str, **options: Any) -> TokenRequestError:
    """The error of *preset*'s mounted token endpoint, through the preset, to a wrong secret
    (or *options*)."""
    emu.add_preset(preset)
    auth = auth_for(emu, preset, **{"client_secret": "wrong-secret-0123456789", **options})
    with pytest.raises(TokenRequestError) as caught:
        auth.get_token()
    auth.close()
    return caught.value


def ask(emu: Emulator, preset: str, fields: dict[str, str], *, basic: bool = False,
        path: str | None = None) -> Answered:
    """A token request of *preset*'s client in process: its secret in the body (or Basic)."""
    client = emu.client(preset)
    headers = {"Content-Type": FORM}
    form = {"grant_type": "client_credentials", **fields}
    if basic:
        pair = f"{client.client_id}:{client.client_secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    else:
        form.update(client_id=str(client.client_id), client_secret=str(client.client_secret))
    url = "https://idp.example" + (path or emu._site(preset).token_path)
    return emu.handle("POST", url, headers, urlencode(form).encode())


def body(answer: Answered) -> Any:
    return json.loads(answer.body)


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_end_to_end(served: Emulator, preset: str) -> None:
    site = served.add_preset(preset)
    assert served.token_url(preset) == served.url + site.token_path
    auth = auth_for(served, preset)
    answers = [requests.get(served.resource_url(preset), auth=auth, timeout=10)
               for _ in range(2)]
    assert [(a.status_code, a.json()["provider"]) for a in answers] == [(200, preset)] * 2
    assert served.token_requests[preset] == 1  # the token was reused
    token = auth.get_token()
    # Each lifetime as the provider says it, or (Salesforce) as the preset assumes it.
    assert token.expires_in == {"keycloak": 300, "salesforce": 7200, "entra": 3599,
                                "auth0": 86400, "zitadel": 43200}.get(preset, 3600)
    assert token.token_type == "Bearer"
    auth.close()


def test_keycloak_tokens_last_five_minutes(served: Emulator) -> None:
    served.add_preset("keycloak")
    auth = auth_for(served, "keycloak")
    token = auth.get_token()
    assert token.raw["expires_in"] == 300
    assert token.raw["refresh_expires_in"] == 0
    assert served.received_at("token")[0].headers["authorization"].startswith("Basic ")
    auth.close()


def test_salesforce_answers_without_expires_in(served: Emulator) -> None:
    served.add_preset("salesforce")
    auth = auth_for(served, "salesforce")
    token = auth.get_token()
    assert "expires_in" not in token.raw
    assert token.raw["instance_url"] == served.url  # the org, where the token was asked for
    assert token.raw["issued_at"].isdigit()
    assert token.expires_in == 7200  # the preset's default_lifetime
    auth.close()


def test_auth0_refuses_an_unknown_api(served: Emulator) -> None:
    client = served.client("auth0")
    error = refused(served, "auth0", client_secret=client.client_secret,
                    extra={"audience": "https://unknown.example"})
    assert (error.status_code, error.error) == (403, "access_denied")
    assert error.description == "Service not found: https://unknown.example"


def test_auth0_refuses_a_request_without_audience() -> None:
    emu = Emulator()
    emu.add_preset("auth0")
    answer = ask(emu, "auth0", {})
    assert answer.status == 403
    assert body(answer) == {"error": "access_denied", "error_description": "No audience "
                            "parameter was provided, and no default audience has been configured"}


def test_auth0_takes_the_rfc6749_path_on_this_emulator() -> None:
    emu = Emulator()
    assert ask(emu, "rfc6749", {}, path="/oauth/token").status == 200
    emu.add_preset("auth0")
    assert body(ask(emu, "rfc6749", {}, path="/oauth/token"))["error"] == "access_denied"


@pytest.mark.parametrize(
    ("scope", "status", "error", "code"),
    [(None, 400, "invalid_request", 900144), ("api://emulated-api/read", 400, "invalid_scope",
                                               1002012)],
)
def test_entra_refuses_a_scope_not_ending_in_default(
    scope: str | None, status: int, error: str, code: int
) -> None:
    emu = Emulator()
    emu.add_preset("entra")
    answer = ask(emu, "entra", {} if scope is None else {"scope": scope})
    found = body(answer)
    assert (answer.status, found["error"], found["error_codes"]) == (status, error, [code])
    assert found["error_description"].startswith(f"AADSTS{code}: ")
    assert "Trace ID: " in found["error_description"]
    assert found["correlation_id"]


def test_entra_wrong_secret_through_the_preset(served: Emulator) -> None:
    error = refused(served, "entra")
    assert error.status_code == 401
    assert (error.description or "").startswith("AADSTS7000215")


def test_okta_org_server_takes_okta_scopes_only(served: Emulator) -> None:
    served.add_preset("okta", "/oauth2/v1/token")
    auth = auth_for(served, "okta", scope="okta.users.read")
    assert requests.get(served.resource_url("okta"), auth=auth, timeout=10).status_code == 200
    auth.close()
    # The preset refuses a custom scope there before sending: the emulator refuses it too.
    answer = ask(served, "okta", {"scope": "emulated.read"}, basic=True)
    assert answer.status == 400
    assert body(answer)["error"] == "invalid_scope"
    # A custom authorization server takes it.
    served.add_preset("okta")
    assert ask(served, "okta", {"scope": "emulated.read"}, basic=True).status == 200


def test_cognito_refuses_client_assertions_and_plain_scopes() -> None:
    emu = Emulator()
    emu.add_preset("cognito")
    client = emu.client("cognito")
    assertion = {"client_id": str(client.client_id), "scope": "emulated-api/read",
                 "client_assertion_type":
                 "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                 "client_assertion": "a.b.c", "grant_type": "client_credentials"}
    answer = emu.handle("POST", "https://idp.example/oauth2/token", {"Content-Type": FORM},
                        urlencode(assertion).encode())
    assert (answer.status, body(answer)) == (400, {"error": "invalid_client"})
    answer = ask(emu, "cognito", {"scope": "openid"}, basic=True)
    assert (answer.status, body(answer)) == (400, {"error": "invalid_scope"})
    assert ask(emu, "cognito", {"scope": "emulated-api/read"}, basic=True).status == 200


def test_cognito_wrong_secret_through_the_preset(served: Emulator) -> None:
    error = refused(served, "cognito")
    assert (error.status_code, error.error, error.description) == (400, "invalid_client", None)


def test_pingone_errors_in_its_code_message_shape(served: Emulator) -> None:
    error = refused(served, "pingone")
    assert (error.status_code, error.error) == (401, "ACCESS_FAILED")
    assert error.description == "Request denied: Invalid client credentials"
    answer = served.handle("POST", served.token_url("pingone"), {"Content-Type": "text/plain"})
    assert answer.status == 400
    assert set(body(answer)) == {"id", "code", "message"}


def test_zitadel_requires_a_project_audience_scope() -> None:
    emu = Emulator()
    emu.add_preset("zitadel")
    answer = ask(emu, "zitadel", {"scope": "openid"}, basic=True)
    assert (answer.status, body(answer)["error"]) == (400, "invalid_scope")
    assert "urn:zitadel:iam:org:project:id:{projectId}:aud" in body(answer)["error_description"]
    assert ask(emu, "zitadel", {}, basic=True).status == 400
    good = {"scope": "openid urn:zitadel:iam:org:project:id:42:aud"}
    assert ask(emu, "zitadel", good, basic=True).status == 200


def test_add_preset_refusals() -> None:
    emu = Emulator()
    with pytest.raises(ValueError, match="add_preset"):
        emu.token_url("auth0")
    with pytest.raises(ValueError, match="unknown preset"):
        emu.add_preset("fincalc")
    with pytest.raises(ValueError, match="starts with"):
        emu.add_preset("auth0", "oauth/token")
    emu.add_preset("zitadel")
    with pytest.raises(ValueError, match="already served"):
        emu.add_preset("auth0", PRESET_SITES["zitadel"].token_path)
    with pytest.raises(ValueError, match="already served"):
        emu.add_preset("auth0", "/resource")
