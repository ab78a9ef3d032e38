"""The emulator verifying DPoP proofs (RFC 9449) at its token endpoints and protected
resources, in process (:meth:`Emulator.handle`), with proofs made here with joserfc."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from oauth_cc_auth.testing import Answered, EmulatedClient, Emulator, Reply
from oauth_cc_auth.testing._dpop import (
    DPOP_ALGS,
    DPoPRefusal,
    SeenJtis,
    access_token_hash,
    normalise_url,
    verify_proof,
)

FORM = "application/x-www-form-urlencoded"
TOKEN_URL = "https://auth.example/oauth/token"
RESOURCE_URL = "https://api.example/resource"
CREDENTIALS = {"grant_type": "client_credentials", "client_id": "generic-client",
               "client_secret": "generic-secret-0123456789"}
KEY = ECKey.generate_key("P-256")
OTHER_KEY = ECKey.generate_key("P-256")

Signer = ECKey | RSAKey | OKPKey | OctKey


@pytest.fixture
def emu() -> Emulator:
    return Emulator(token_prefix="tok-")


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048)


def proof(
    key: Signer = KEY, method: str = "POST", url: str = TOKEN_URL, *, alg: str = "ES256",
    typ: str = "dpop+jwt", jwk: dict[str, Any] | None = None, token: str | None = None,
    nonce: str | None = None, iat: float | None = None, jti: str | None = None,
    drop: tuple[str, ...] = (), signer: Signer | None = None,
) -> str:
    """A DPoP proof signed by joserfc (*signer*, by default *key*, whose public JWK is the
    ``jwk`` header unless *jwk* is given)."""
    header = {"typ": typ, "alg": alg,
              "jwk": key.as_dict(private=False) if jwk is None else jwk}
    claims: dict[str, Any] = {"htm": method, "htu": url,
                              "iat": int(time.time()) if iat is None else iat,
                              "jti": jti or secrets.token_urlsafe(16)}
    if token is not None:
        digest = hashlib.sha256(token.encode("ascii")).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    if nonce is not None:
        claims["nonce"] = nonce
    for name in drop:
        claims.pop(name)
    return jws.serialize_compact(header, json.dumps(claims), signer or key, algorithms=[alg])


def ask(emu: Emulator, dpop: str | list[str] | None = None, url: str = TOKEN_URL,
        fields: dict[str, str] | None = None) -> Answered:
    headers = [("Content-Type", FORM)]
    headers += [("DPoP", value) for value in ([dpop] if isinstance(dpop, str) else dpop or [])]
    return emu.handle("POST", url, headers, urlencode(fields or CREDENTIALS).encode())


def use(emu: Emulator, token: str, dpop: str | None = None, scheme: str = "DPoP",
        url: str = RESOURCE_URL) -> Answered:
    headers = {"Authorization": f"{scheme} {token}"}
    if dpop is not None:
        headers["DPoP"] = dpop
    return emu.handle("GET", url, headers)


def document(answer: Answered) -> Any:
    return json.loads(answer.body)


def header(answer: Answered, name: str) -> str | None:
    values = [value for key, value in answer.headers if key.lower() == name.lower()]
    assert len(values) <= 1
    return values[0] if values else None


def bound_token(emu: Emulator, key: Signer = KEY) -> str:
    answer = ask(emu, proof(key))
    assert answer.status == 200, answer.body
    assert document(answer)["token_type"] == "DPoP"
    return str(document(answer)["access_token"])


def refused(answer: Answered, status: int, error: str, words: str) -> None:
    assert answer.status == status, answer.body
    assert document(answer)["error"] == error
    assert words in document(answer)["error_description"]
    if status == 401:
        assert header(answer, "WWW-Authenticate") == (
            f'DPoP error="{error}", error_description="{document(answer)["error_description"]}"'
        )


class TestTokenEndpoint:
    def test_a_proof_gets_a_dpop_bound_token_usable_with_a_proof_of_the_key(
        self, emu: Emulator
    ) -> None:
        sent = proof()
        answer = ask(emu, sent)
        assert answer.status == 200
        assert document(answer) == {"access_token": "tok-1", "expires_in": 3600,
                                    "token_type": "DPoP"}
        assert header(answer, "DPoP-Nonce") is None
        assert emu.received_at("token")[0].headers["dpop"] == sent
        granted = use(emu, "tok-1", proof(method="GET", url=RESOURCE_URL, token="tok-1"))
        assert (granted.status, document(granted)["ok"]) == (200, True)
        assert emu.dpop_refusals == {}

    @pytest.mark.parametrize("alg", ["RS256", "PS256"])
    def test_rsa_keys(self, emu: Emulator, rsa_key: RSAKey, alg: str) -> None:
        answer = ask(emu, proof(rsa_key, alg=alg))
        assert (answer.status, document(answer)["token_type"]) == (200, "DPoP")
        token = document(answer)["access_token"]
        assert use(emu, token, proof(rsa_key, "GET", RESOURCE_URL, alg=alg,
                                     token=token)).status == 200
        refused(use(emu, token, proof(method="GET", url=RESOURCE_URL, token=token)), 401,
                "invalid_dpop_proof", "not the key the access token is bound to")

    @pytest.mark.parametrize("alg", ["Ed25519", "EdDSA"])
    def test_ed25519_keys(self, emu: Emulator, alg: str) -> None:
        key = OKPKey.generate_key("Ed25519")
        # joserfc warns when signing with EdDSA; the emulator verifies without a warning.
        with pytest.warns(SecurityWarning) if alg == "EdDSA" else contextlib.nullcontext():
            sent = proof(key, alg=alg)
        assert ask(emu, sent).status == 200

    def test_the_jkt_is_the_rfc7638_thumbprint(self) -> None:
        verified = verify_proof([proof()], method="POST", urls=[TOKEN_URL], now=time.time())
        assert verified.jkt == KEY.thumbprint()
        assert len(base64.urlsafe_b64decode(verified.jkt + "=")) == 32

    @pytest.mark.parametrize(("make", "words", "reason"), [
        (lambda: proof(typ="JWT"), "typ must be dpop+jwt", "typ"),
        (lambda: proof(typ="", drop=()), "typ must be dpop+jwt", "typ"),
        (lambda: proof(OctKey.generate_key(256), alg="HS256",
                       jwk=KEY.as_dict(private=False)), "alg is not accepted", "alg"),
        (lambda: proof(signer=OTHER_KEY), "signature is invalid", "signature"),
        (lambda: proof(jwk=KEY.as_dict(private=True)), "holds a private key", "private_jwk"),
        (lambda: proof(jwk={"kty": "oct", "k": "c2VjcmV0"}), "asymmetric", "jwk"),
        (lambda: proof(jwk={"kty": "EC", "crv": "P-256"}), "not a key", "jwk"),
        (lambda: proof(jwk={"kty": "nope"}), "asymmetric", "jwk"),
        (lambda: proof(method="GET"), "htm is not this request's method", "htm"),
        (lambda: proof(url="https://auth.example/other/token"), "htu is not this request",
         "htu"),
        (lambda: proof(url="https://elsewhere.example/oauth/token"), "htu is not this request",
         "htu"),
        (lambda: proof(url="http://auth.example/oauth/token"), "htu is not this request",
         "htu"),
        (lambda: proof(url=TOKEN_URL + "?a=1"), "without query and fragment", "htu"),
        (lambda: proof(url=TOKEN_URL + "#f"), "without query and fragment", "htu"),
        (lambda: proof(url="/oauth/token"), "not an absolute URL", "htu"),
        (lambda: proof(drop=("htu",)), "has no htu", "htu"),
        (lambda: proof(iat=time.time() - 61), "iat is more than 60 s", "iat"),
        (lambda: proof(iat=time.time() + 61), "iat is more than 60 s", "iat"),
        (lambda: proof(iat="now"), "iat is missing or not a number", "iat"),
        (lambda: proof(drop=("jti",)), "jti is missing", "jti"),
        (lambda: "not-a-jws", "not a JWS", "malformed"),
        (lambda: "a.b.c", "not a JWS", "malformed"),
        (lambda: [proof(), proof()], "more than one DPoP header", "several"),
    ])
    def test_refusals(self, emu: Emulator, make: Any, words: str, reason: str) -> None:
        refused(ask(emu, make()), 400, "invalid_dpop_proof", words)
        assert emu.dpop_refusals == {"invalid_dpop_proof": 1, reason: 1}
        assert emu.token_requests["rfc6749"] == 1
        assert not emu._tokens

    def test_the_url_is_compared_without_query_and_normalised(self, emu: Emulator) -> None:
        url = TOKEN_URL + "?tenant=a"
        assert ask(emu, proof(url=TOKEN_URL), url=url).status == 200
        refused(ask(emu, proof(url=url), url=url), 400, "invalid_dpop_proof", "without query")
        assert ask(emu, proof(url="HTTPS://Auth.EXAMPLE:443/oauth/%74oken")).status == 200
        local = "http://127.0.0.1:8080/oauth/token"
        assert ask(emu, proof(url=local), url=local).status == 200
        refused(ask(emu, proof(url="http://127.0.0.1/oauth/token"), url=local), 400,
                "invalid_dpop_proof", "htu")
        assert ask(emu, proof(url="http://[::1]/oauth/token"),
                   url="http://[::1]:80/oauth/token").status == 200

    def test_a_replayed_proof_is_refused(self, emu: Emulator) -> None:
        sent = proof()
        assert ask(emu, sent).status == 200
        refused(ask(emu, sent), 400, "invalid_dpop_proof", "already used")
        assert emu.dpop_refusals["replayed"] == 1
        # The jti, not the proof: a new proof with the same jti is refused too.
        jti = secrets.token_urlsafe(8)
        assert ask(emu, proof(jti=jti)).status == 200
        refused(ask(emu, proof(jti=jti)), 400, "invalid_dpop_proof", "already used")

    def test_a_refused_proof_spends_no_jti(self, emu: Emulator) -> None:
        emu.demand_dpop_nonce()
        jti = secrets.token_urlsafe(8)
        assert ask(emu, proof(jti=jti)).status == 400
        emu.stop_demanding_dpop_nonce()
        assert ask(emu, proof(jti=jti)).status == 200

    def test_nonce_demanded_given_and_rotated(self, emu: Emulator) -> None:
        nonce = emu.demand_dpop_nonce()
        answer = ask(emu, proof())
        refused(answer, 400, "use_dpop_nonce", "has no nonce")
        assert header(answer, "DPoP-Nonce") == nonce
        answer = ask(emu, proof(nonce="made-up"))
        refused(answer, 400, "use_dpop_nonce", "stale nonce")
        answer = ask(emu, proof(nonce=nonce))
        assert (answer.status, header(answer, "DPoP-Nonce")) == (200, nonce)
        # Every answer of the endpoint says it, a Bearer one and a refusal too.
        answer = ask(emu)
        assert (answer.status, header(answer, "DPoP-Nonce")) == (200, nonce)
        answer = ask(emu, proof(nonce=nonce), fields={**CREDENTIALS, "client_secret": "x"})
        assert (answer.status, header(answer, "DPoP-Nonce")) == (401, nonce)
        rotated = emu.demand_dpop_nonce("token")
        assert rotated != nonce
        answer = ask(emu, proof(nonce=nonce))
        refused(answer, 400, "use_dpop_nonce", "stale nonce")
        assert header(answer, "DPoP-Nonce") == rotated
        assert ask(emu, proof(nonce=rotated)).status == 200
        assert emu.dpop_refusals == {"use_dpop_nonce": 3, "nonce": 3}
        # The resource demands none: its answers say none.
        assert header(use(emu, "tok-1", scheme="Bearer"), "DPoP-Nonce") is None
        emu.stop_demanding_dpop_nonce("token")
        answer = ask(emu, proof())
        assert (answer.status, header(answer, "DPoP-Nonce")) == (200, None)
        with pytest.raises(ValueError, match="'token' or 'resource'"):
            emu.demand_dpop_nonce("metadata")

    def test_a_dpop_bound_client_needs_a_proof(self, emu: Emulator) -> None:
        client = emu.register_client(EmulatedClient("rfc6749", "bound", "bound-secret-0123456789",
                                                    dpop_bound=True))
        assert client.options() == {"provider": "rfc6749", "dpop": True}
        fields = {**CREDENTIALS, "client_id": "bound", "client_secret": "bound-secret-0123456789"}
        refused(ask(emu, fields=fields), 400, "invalid_dpop_proof", "a DPoP proof is required")
        assert emu.dpop_refusals == {"invalid_dpop_proof": 1, "missing": 1}
        assert document(ask(emu, proof(), fields=fields))["token_type"] == "DPoP"
        # Wrong credentials are still invalid_client.
        assert ask(emu, fields={**fields, "client_secret": "x"}).status == 401

    def test_the_seed_and_preset_answers_say_dpop(self, emu: Emulator) -> None:
        fincalc = emu.handle(
            "POST", "https://fincalc.example/api/oauth/token",
            {"Content-Type": "application/json",
             "DPoP": proof(url="https://fincalc.example/api/oauth/token")},
            json.dumps({"grant_type": "client_credentials", "client_id": 12345,
                        "client_secret": "fincalc-secret-0123456789", "scope": "api_scope",
                        "email_address": "demo@example.com"}).encode())
        assert document(fincalc)["data"]["token_type"] == "DPoP"
        emu.add_preset("keycloak")
        url = "https://kc.example/realms/demo/protocol/openid-connect/token"
        client = emu.client("keycloak")
        answer = ask(emu, proof(url=url), url=url, fields={
            "grant_type": "client_credentials", "client_id": str(client.client_id),
            "client_secret": str(client.client_secret)})
        assert (answer.status, document(answer)["token_type"]) == (200, "DPoP")


class TestResource:
    def test_refusals(self, emu: Emulator) -> None:
        token = bound_token(emu)
        get = {"method": "GET", "url": RESOURCE_URL}
        refused(use(emu, token), 401, "invalid_dpop_proof", "a DPoP proof is required")
        refused(use(emu, token, proof(**get)), 401, "invalid_dpop_proof", "has no ath")
        refused(use(emu, token, proof(**get, token="other")), 401, "invalid_dpop_proof",
                "not the access token's hash")
        refused(use(emu, token, proof(OTHER_KEY, **get, token=token)), 401,
                "invalid_dpop_proof", "not the key the access token is bound to")
        refused(use(emu, token, proof(token=token, url=RESOURCE_URL)), 401,
                "invalid_dpop_proof", "htm")
        refused(use(emu, token, proof(method="GET", token=token)), 401,
                "invalid_dpop_proof", "htu")
        refused(use(emu, token, proof(**get, token=token, typ="jwt")), 401,
                "invalid_dpop_proof", "typ")
        refused(use(emu, "tok-99", proof(**get, token="tok-99")), 401, "invalid_token",
                "unknown")
        sent = proof(**get, token=token)
        assert use(emu, token, sent).status == 200
        refused(use(emu, token, sent), 401, "invalid_dpop_proof", "already used")
        assert emu.dpop_refusals["replayed"] == 1
        assert emu.dpop_refusals["invalid_dpop_proof"] == 8
        # A token request's proof is no resource proof, and the other way round.
        refused(use(emu, token, proof(token=token)), 401, "invalid_dpop_proof", "htm")

    def test_a_bound_token_is_no_bearer_token_and_the_other_way_round(
        self, emu: Emulator
    ) -> None:
        token = bound_token(emu)
        refused(use(emu, token, scheme="Bearer"), 401, "invalid_token", "DPoP-bound")
        refused(use(emu, token, proof(method="GET", url=RESOURCE_URL, token=token),
                    scheme="Bearer"), 401, "invalid_token", "DPoP-bound")
        bearer = document(ask(emu))
        assert bearer["token_type"] == "bearer"
        refused(use(emu, bearer["access_token"], proof(method="GET", url=RESOURCE_URL,
                                                       token=bearer["access_token"])),
                401, "invalid_token", "not DPoP-bound")
        assert use(emu, bearer["access_token"], scheme="Bearer").status == 200
        assert use(emu, token, proof(method="GET", url=RESOURCE_URL, token=token),
                   scheme="dpop").status == 200

    def test_an_expired_or_revoked_bound_token(self, emu: Emulator) -> None:
        token = bound_token(emu)
        emu.revoke_all()
        refused(use(emu, token, proof(method="GET", url=RESOURCE_URL, token=token)), 401,
                "invalid_token", "unknown, expired or revoked")

    def test_nonce_at_the_resource(self, emu: Emulator) -> None:
        token = bound_token(emu)
        nonce = emu.demand_dpop_nonce("resource")
        answer = use(emu, token, proof(method="GET", url=RESOURCE_URL, token=token))
        refused(answer, 401, "use_dpop_nonce", "has no nonce")
        assert header(answer, "DPoP-Nonce") == nonce
        answer = use(emu, token, proof(method="GET", url=RESOURCE_URL, token=token,
                                       nonce=nonce))
        assert (answer.status, header(answer, "DPoP-Nonce")) == (200, nonce)
        rotated = emu.demand_dpop_nonce("resource")
        answer = use(emu, token, proof(method="GET", url=RESOURCE_URL, token=token,
                                       nonce=nonce))
        refused(answer, 401, "use_dpop_nonce", "stale nonce")
        assert header(answer, "DPoP-Nonce") == rotated
        # The token endpoint demands none.
        answer = ask(emu, proof())
        assert (answer.status, header(answer, "DPoP-Nonce")) == (200, None)
        emu.stop_demanding_dpop_nonce("resource")
        answer = use(emu, token, proof(method="GET", url=RESOURCE_URL, token=token))
        assert (answer.status, header(answer, "DPoP-Nonce")) == (200, None)


class TestUnchanged:
    def test_without_a_proof_tokens_are_bearer_tokens(self, emu: Emulator) -> None:
        answer = ask(emu)
        assert document(answer) == {"access_token": "tok-1", "expires_in": 3600,
                                    "token_type": "bearer"}
        assert use(emu, "tok-1", scheme="Bearer").status == 200
        assert use(emu, "tok-2", scheme="Bearer").headers == [
            ("Content-Type", "application/json"),
            ("WWW-Authenticate", 'Bearer error="invalid_token"'), ("Content-Length", "26")]
        assert emu.dpop_refusals == {}

    def test_scripts_and_faults_answer_before_any_proof_is_checked(
        self, emu: Emulator
    ) -> None:
        emu.answer_next(Reply(200, {"access_token": "scripted", "token_type": "bearer"}))
        assert document(ask(emu, "not-a-proof"))["access_token"] == "scripted"
        emu.fail_next(1, 503)
        assert ask(emu, "not-a-proof").status == 503
        emu.answer_next(Reply(204), endpoint="resource")
        assert use(emu, "whatever", "not-a-proof").status == 204
        nonce = emu.demand_dpop_nonce()
        emu.answer_next(Reply(200, {"access_token": "scripted"}),
                        Reply(200, {}, headers={"DPoP-Nonce": "own"}))
        assert header(ask(emu), "DPoP-Nonce") == nonce
        assert header(ask(emu), "DPoP-Nonce") == "own"
        assert emu.dpop_refusals == {}

    def test_the_metadata_names_the_dpop_algorithms(self, emu: Emulator) -> None:
        answer = emu.handle("GET", "https://auth.example/.well-known/oauth-authorization-server",
                            {})
        assert document(answer)["dpop_signing_alg_values_supported"] == list(DPOP_ALGS)
        assert not {"none", "HS256"} & set(DPOP_ALGS)

    def test_reset_counters_forgets_the_refusals(self, emu: Emulator) -> None:
        ask(emu, "x")
        assert emu.dpop_refusals["malformed"] == 1
        emu.reset_counters()
        assert emu.dpop_refusals == {}


class TestPieces:
    def test_normalise_url(self) -> None:
        assert normalise_url("HTTPS://A.Example:443/x%2fy%7e?q#f") == "https://a.example/x%2Fy~"
        assert normalise_url("http://a.example:8080") == "http://a.example:8080/"
        assert normalise_url("http://[::1]:80/t") == "http://[::1]/t"
        assert access_token_hash("tok-1") == base64.urlsafe_b64encode(
            hashlib.sha256(b"tok-1").digest()).rstrip(b"=").decode()

    def test_seen_jtis_are_bounded_in_time_and_number(self) -> None:
        seen = SeenJtis(keep=300, limit=3)
        seen.remember("a", 0)
        with pytest.raises(DPoPRefusal, match="already used"):
            seen.remember("a", 299)
        seen.remember("a", 301)  # forgotten after 300 s
        for jti in "bcd":
            seen.remember(jti, 302)
        assert len(seen) == 3
        seen.remember("a", 303)  # the oldest forgotten first

    def test_no_proof(self) -> None:
        with pytest.raises(DPoPRefusal) as refusal:
            verify_proof([], method="GET", urls=[RESOURCE_URL], now=time.time())
        assert (refusal.value.error, refusal.value.reason) == ("invalid_dpop_proof", "missing")


def test_over_loopback() -> None:
    with Emulator() as emulator:
        url = emulator.token_url("rfc6749")
        answer = requests.post(url, data=CREDENTIALS, headers={"DPoP": proof(url=url)},
                               timeout=5)
        assert (answer.status_code, answer.json()["token_type"]) == (200, "DPoP")
        token = answer.json()["access_token"]
        resource = emulator.resource_url("rfc6749") + "?page=2"
        answer = requests.get(resource, timeout=5, headers={
            "Authorization": f"DPoP {token}",
            "DPoP": proof(method="GET", url=emulator.resource_url("rfc6749"), token=token)})
        assert answer.status_code == 200
        localhost = url.replace("127.0.0.1", "localhost")
        answer = requests.post(localhost, data=CREDENTIALS, timeout=5,
                               headers={"DPoP": proof(url=localhost)})
        assert answer.status_code == 200
        # Two DPoP headers (wsgiref joins them with a comma).
        port = int(url.split(":")[2].split("/")[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        body = urlencode(CREDENTIALS)
        connection.putrequest("POST", "/oauth/token")
        for name, value in (("Content-Type", FORM), ("Content-Length", str(len(body))),
                            ("DPoP", proof(url=url)), ("DPoP", proof(url=url))):
            connection.putheader(name, value)
        connection.endheaders(body.encode())
        reply = connection.getresponse()
        assert (reply.status, json.loads(reply.read())["error_description"]) == (
            400, "more than one DPoP header")
        connection.close()
