"""The emulator checks requests as each provider documents, and its controls work."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
import requests
from authlib.oauth2.rfc7523 import client_secret_jwt_sign, private_key_jwt_sign
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

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


# -- client authentication at the rfc6749 site ---------------------------------------------------

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PK_CLIENT = "pkjwt-client"
HS_CLIENT = "csjwt-client"
HS_SECRET = "client-secret-jwt-secret-of-at-least-32-bytes"
RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
OKP_KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "okp-1"})
# Same kid as RSA_KEY, other key material: a forger's key.
OTHER_RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})


@pytest.fixture
def jwt_emulator(emulator: Emulator) -> Emulator:
    """The emulator with a private_key_jwt client (RSA, EC and OKP keys) and a
    client_secret_jwt one."""
    keys = [key.as_dict(private=False) for key in (RSA_KEY, EC_KEY, OKP_KEY)]
    emulator.register_client(EmulatedClient("rfc6749", PK_CLIENT, jwks={"keys": keys}))
    emulator.register_client(EmulatedClient("rfc6749", HS_CLIENT, HS_SECRET))
    return emulator


def sign_private_key_jwt(
    emu: Emulator, key: Any = RSA_KEY, alg: str = "RS256", client_id: str = PK_CLIENT,
    **options: Any,
) -> str:
    header = options.pop("header", {"kid": key.kid})
    audience = options.pop("audience", emu.token_url("rfc6749"))
    return str(private_key_jwt_sign(key, client_id, audience, alg=alg, header=header, **options))


def post_assertion(emu: Emulator, assertion: str, **fields: str) -> requests.Response:
    return requests.post(emu.token_url("rfc6749"), timeout=10, data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion, **fields})


def assert_invalid_client(response: requests.Response, why: str, *secrets: str) -> None:
    assert response.status_code == 401
    answer = response.json()
    assert answer["error"] == "invalid_client"
    assert why in answer["error_description"]
    for secret in secrets:
        assert secret not in response.text


@pytest.mark.parametrize(
    ("key", "alg", "header"),
    [
        (RSA_KEY, "RS256", {"kid": "rsa-1"}),
        (RSA_KEY, "PS256", {"kid": "rsa-1"}),
        (EC_KEY, "ES256", {"kid": "ec-1"}),
        (EC_KEY, "ES256", {}),  # no kid: the key is found by type
        (OKP_KEY, "Ed25519", {"kid": "okp-1"}),
    ],
)
def test_private_key_jwt_is_accepted_once(
    jwt_emulator: Emulator, key: Any, alg: str, header: dict[str, str]
) -> None:
    assertion = sign_private_key_jwt(jwt_emulator, key, alg, header=header)
    response = post_assertion(jwt_emulator, assertion, client_id=PK_CLIENT)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    resource = requests.get(jwt_emulator.resource_url("rfc6749"), timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
    assert resource.json()["client_id"] == PK_CLIENT
    # RFC 7523 §3: a jti is one-time; the same assertion again is a replay.
    replay = post_assertion(jwt_emulator, assertion)
    assert_invalid_client(replay, "jti", assertion)
    assert jwt_emulator.client_assertions == [assertion, assertion]


@pytest.mark.parametrize(
    "audience",
    ["issuer", "token_url", "token_url_in_a_list", "as_addressed"],
)
def test_accepted_audiences(jwt_emulator: Emulator, audience: str) -> None:
    emu = jwt_emulator
    headers = {}
    aud: str | list[str] = emu.token_url("rfc6749")
    if audience == "issuer":
        aud = emu.issuer
    elif audience == "token_url_in_a_list":
        aud = ["https://someone-else.example", emu.token_url("rfc6749")]
    elif audience == "as_addressed":
        headers["Host"] = "alias.example:8443"
        aud = "http://alias.example:8443/oauth/token"
    assertion = sign_private_key_jwt(emu, audience=aud)
    response = requests.post(emu.token_url("rfc6749"), timeout=10, headers=headers, data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion})
    assert response.status_code == 200, response.text


def _no_jti(emu: Emulator) -> str:
    now = int(time.time())
    claims = {"iss": PK_CLIENT, "sub": PK_CLIENT, "aud": emu.token_url("rfc6749"),
              "iat": now, "exp": now + 60}
    return jwt.encode({"alg": "RS256", "kid": "rsa-1"}, claims, RSA_KEY, algorithms=["RS256"])


REFUSALS: dict[str, tuple[Callable[[Emulator], str], dict[str, str], str]] = {
    "wrong key": (lambda emu: sign_private_key_jwt(emu, OTHER_RSA_KEY), {}, "signature"),
    "unknown kid": (lambda emu: sign_private_key_jwt(emu, header={"kid": "nope"}), {}, "kid"),
    "wrong aud": (lambda emu: sign_private_key_jwt(emu, audience="https://as.example/token"),
                  {}, "aud"),
    "expired": (lambda emu: sign_private_key_jwt(
        emu, issued_at=int(time.time()) - 600, expires_in=60), {}, "expired"),
    "iat in the future": (lambda emu: sign_private_key_jwt(
        emu, issued_at=int(time.time()) + 120), {}, "iat"),
    "exp - iat over the limit": (lambda emu: sign_private_key_jwt(emu, expires_in=3601),
                                 {}, "lifetime"),
    "missing jti": (_no_jti, {}, "jti"),
    "iss != sub": (lambda emu: sign_private_key_jwt(emu, claims={"iss": "someone-else"}),
                   {}, "iss"),
    "client_id != sub": (lambda emu: sign_private_key_jwt(emu), {"client_id": HS_CLIENT},
                         "client_id"),
    "unknown client": (lambda emu: sign_private_key_jwt(emu, client_id="nobody"), {},
                       "not a registered client"),
    # Alg confusion: an HMAC assertion for a client that has public keys and no secret.
    "HS256 for a jwks-only client": (lambda emu: str(client_secret_jwt_sign(
        OctKey.import_key(secrets.token_bytes(32)), PK_CLIENT, emu.token_url("rfc6749"))),
        {}, "secret"),
    "RS256 for a secret-only client": (lambda emu: sign_private_key_jwt(emu, client_id=HS_CLIENT),
                                       {}, "jwks"),
    "alg none": (lambda emu: jwt.encode(
        {"alg": "none"}, {"iss": PK_CLIENT, "sub": PK_CLIENT}, None, algorithms=["none"]),
        {}, "alg"),
    "not a JWT": (lambda emu: "not.a.jwt", {}, "not a signed JWT"),
    "wrong assertion type": (lambda emu: sign_private_key_jwt(emu),
                             {"client_assertion_type": "urn:example:saml"},
                             "client_assertion_type"),
}


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")  # alg none, when signing
@pytest.mark.parametrize("case", list(REFUSALS))
def test_private_key_jwt_refusals(jwt_emulator: Emulator, case: str) -> None:
    make, fields, why = REFUSALS[case]
    assertion = make(jwt_emulator)
    response = post_assertion(jwt_emulator, assertion, **fields)
    assert_invalid_client(response, why, assertion)
    assert jwt_emulator.client_assertions == [assertion]


def test_max_assertion_lifetime_is_configurable(jwt_emulator: Emulator) -> None:
    jwt_emulator.max_assertion_lifetime = 60
    long = sign_private_key_jwt(jwt_emulator, expires_in=61)
    assert_invalid_client(post_assertion(jwt_emulator, long), "over 60 s")
    assert post_assertion(jwt_emulator, sign_private_key_jwt(jwt_emulator, expires_in=60)).ok


def test_a_refused_assertion_does_not_use_up_its_jti(jwt_emulator: Emulator) -> None:
    jti = secrets.token_urlsafe(16)
    forged = sign_private_key_jwt(jwt_emulator, OTHER_RSA_KEY, claims={"jti": jti})
    assert_invalid_client(post_assertion(jwt_emulator, forged), "signature")
    genuine = sign_private_key_jwt(jwt_emulator, claims={"jti": jti})
    assert post_assertion(jwt_emulator, genuine).ok
    # One-time per client: another client may use the same jti.
    other = str(client_secret_jwt_sign(OctKey.import_key(HS_SECRET), HS_CLIENT,
                                       jwt_emulator.token_url("rfc6749"), claims={"jti": jti}))
    assert post_assertion(jwt_emulator, other).ok


def test_a_replay_race_has_one_winner(jwt_emulator: Emulator) -> None:
    assertion = sign_private_key_jwt(jwt_emulator)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: post_assertion(jwt_emulator, assertion).status_code,
                                 range(8)))
    assert sorted(statuses) == [200] + [401] * 7


def test_client_secret_jwt(jwt_emulator: Emulator) -> None:
    url = jwt_emulator.token_url("rfc6749")
    good = str(client_secret_jwt_sign(OctKey.import_key(HS_SECRET), HS_CLIENT, url))
    response = post_assertion(jwt_emulator, good, client_id=HS_CLIENT)
    assert response.status_code == 200, response.text
    wrong_secret = "not-the-client-secret-but-as-long-as-one"
    bad = str(client_secret_jwt_sign(OctKey.import_key(wrong_secret), HS_CLIENT, url))
    assert_invalid_client(post_assertion(jwt_emulator, bad), "signature", bad, HS_SECRET)
    assert jwt_emulator.client_assertions == [good, bad]
    jwt_emulator.reset_counters()
    assert jwt_emulator.client_assertions == []


BASIC_ID = "basic client+1/é"
BASIC_SECRET = "p+a/s=s%2B:w o\u0301rd-€-0123456789"


def basic(client_id: str, secret: str, *, form_encode: bool = True) -> dict[str, str]:
    if form_encode:  # RFC 6749 §2.3.1
        client_id, secret = quote_plus(client_id), quote_plus(secret)
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def test_client_secret_basic_is_form_encoded(emulator: Emulator) -> None:
    emulator.register_client(EmulatedClient("rfc6749", BASIC_ID, BASIC_SECRET))
    url = emulator.token_url("rfc6749")
    grant = {"grant_type": "client_credentials"}
    response = requests.post(url, data=grant, headers=basic(BASIC_ID, BASIC_SECRET), timeout=10)
    assert response.status_code == 200, response.text
    # The client id may also be in the body, if it is the same.
    again = requests.post(url, data={**grant, "client_id": BASIC_ID}, timeout=10,
                          headers=basic(BASIC_ID, BASIC_SECRET))
    assert again.status_code == 200, again.text
    # Not form-encoded: a strict server reads '+' as a space, and the secret is wrong.
    emulator.register_client(EmulatedClient("rfc6749", "plain-id", BASIC_SECRET))
    raw = requests.post(url, data=grant, timeout=10,
                        headers=basic("plain-id", BASIC_SECRET, form_encode=False))
    assert_invalid_client(raw, "authentication failed", BASIC_SECRET)
    assert raw.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("header", ["Basic !!!not-base64", "Basic bm8tY29sb24=", "Basic Oi0t"])
def test_malformed_basic_credentials(emulator: Emulator, header: str) -> None:
    response = requests.post(emulator.token_url("rfc6749"), timeout=10,
                             data={"grant_type": "client_credentials"},
                             headers={"Authorization": header})
    assert_invalid_client(response, "malformed Basic")


@pytest.mark.parametrize("combination", ["basic+post", "post+assertion", "basic+assertion"])
def test_one_client_authentication_method_per_request(
    jwt_emulator: Emulator, combination: str
) -> None:
    client = jwt_emulator.client("rfc6749")
    assert client.client_secret is not None
    fields = {"grant_type": "client_credentials"}
    headers = {}
    if "basic" in combination:
        headers = basic(str(client.client_id), client.client_secret)
    if "post" in combination:
        fields |= {"client_id": str(client.client_id), "client_secret": client.client_secret}
    if "assertion" in combination:
        fields |= {"client_assertion_type": ASSERTION_TYPE,
                   "client_assertion": sign_private_key_jwt(jwt_emulator)}
    response = requests.post(jwt_emulator.token_url("rfc6749"), data=fields, headers=headers,
                             timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "more than one" in response.json()["error_description"]


def test_repeated_parameters_are_refused(emulator: Emulator) -> None:
    client = emulator.client("rfc6749")
    body = [("grant_type", "client_credentials"), ("client_id", str(client.client_id)),
            ("client_secret", str(client.client_secret)), ("client_id", "other")]
    response = requests.post(emulator.token_url("rfc6749"), data=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["error_description"] == "repeated parameter: client_id"


def test_a_jwks_only_client_has_no_secret_to_post(jwt_emulator: Emulator) -> None:
    response = requests.post(jwt_emulator.token_url("rfc6749"), timeout=10, data={
        "grant_type": "client_credentials", "client_id": PK_CLIENT,
        "client_secret": "any-secret-at-all"})
    assert_invalid_client(response, "authentication failed")


def test_client_registration_rules() -> None:
    emu = Emulator()
    with pytest.raises(ValueError, match="client_secret or a jwks"):
        emu.register_client(EmulatedClient("rfc6749", "nothing"))
    with pytest.raises(ValueError, match="needs a client_secret"):
        emu.register_client(EmulatedClient("figure", "keys-only",
                                           jwks={"keys": [RSA_KEY.as_dict(private=False)]}))
    with pytest.raises(ValueError, match="public keys only"):
        emu.register_client(EmulatedClient("rfc6749", "leaky",
                                           jwks={"keys": [RSA_KEY.as_dict(private=True)]}))
    with pytest.raises(ValueError, match="JWK Set"):
        emu.register_client(EmulatedClient("rfc6749", "odd", jwks={"keys": "nope"}))
    # Positional fields keep their order; the secret stays out of repr.
    client = EmulatedClient("rfc6749", "c", "positional-secret", "a-scope", {"k": "v"})
    assert (client.client_secret, client.scope, client.jwks) == ("positional-secret", "a-scope",
                                                                  None)
    assert "positional-secret" not in repr(emu.register_client(client))
