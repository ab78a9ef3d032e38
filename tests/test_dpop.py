"""DPoP (RFC 9449) on the client side: the proofs, the key options, the token endpoint's and
the APIs' nonces, Bearer answers to DPoP requests, in every adapter flavour."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

import oauth_cc_auth
from oauth_cc_auth._dpop import DPoP, DPoPKey, dpop_nonce, nonce_demanded
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import Reply
from tests.conftest import API_URL, SECRET, TOKEN_URL, Harness, build_auth

DPOP_TOKEN = {"access_token": "dpop-tok-1", "token_type": "DPoP", "expires_in": 3600}


def ath(token: str) -> str:
    digest = hashlib.sha256(token.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def read_proof(proof: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of *proof*, its signature checked with its own ``jwk``."""
    header = json.loads(base64.urlsafe_b64decode(proof.split(".")[0] + "=="))
    loaders = {"EC": ECKey, "RSA": RSAKey}
    key = loaders[header["jwk"]["kty"]].import_key(header["jwk"])
    registry = jws.JWSRegistry(algorithms=[header["alg"]])
    registry.max_header_length = 2048  # an RSA key's jwk is longer than joserfc's default
    verified = jws.deserialize_compact(proof, key, registry=registry)
    return dict(verified.headers()), json.loads(verified.payload)


class TestProof:
    def test_header_and_claims(self) -> None:
        key = DPoPKey.generate()
        before = int(time.time())
        header, claims = read_proof(
            key.proof("GET", "https://api.example/x/y?page=2#top", "tok-1", "n-1")
        )
        assert header == {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk}
        assert set(key.public_jwk) == {"kty", "crv", "x", "y"}  # public: no "d"
        assert claims["htm"] == "GET"
        assert claims["htu"] == "https://api.example/x/y"
        assert before <= claims["iat"] <= int(time.time())
        assert claims["ath"] == ath("tok-1")
        assert claims["nonce"] == "n-1"
        assert len(claims["jti"]) >= 16

    def test_token_requests_carry_neither_ath_nor_nonce_unless_given(self) -> None:
        _, claims = read_proof(DPoPKey.generate().proof("POST", TOKEN_URL))
        assert set(claims) == {"jti", "htm", "htu", "iat"}

    def test_every_proof_has_a_fresh_jti(self) -> None:
        key = DPoPKey.generate()
        jtis = {read_proof(key.proof("GET", API_URL, "t"))[1]["jti"] for _ in range(50)}
        assert len(jtis) == 50

    def test_thumbprint_is_rfc7638(self) -> None:
        key = DPoPKey.generate()
        assert key.thumbprint == ECKey.import_key(key.public_jwk).thumbprint()
        private = key._key.as_dict(private=True)["d"]
        assert private not in repr(key)
        assert key.thumbprint in repr(key)

    def test_keys_from_pem_path_and_jwk(self, tmp_path: Path) -> None:
        rsa = RSAKey.generate_key(2048, private=True)
        pem = rsa.as_pem(private=True)
        path = tmp_path / "dpop.pem"
        path.write_bytes(pem)
        for given in (pem, pem.decode(), path, str(path), rsa.as_dict(private=True)):
            key = DPoPKey.load(given)
            assert key.alg == "RS256"
            assert key.thumbprint == rsa.thumbprint()
            header, _ = read_proof(key.proof("GET", API_URL))
            assert set(header["jwk"]) == {"kty", "n", "e"}

    @pytest.mark.parametrize(
        ("given", "message"),
        [
            ({"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}, "dpop_key is a public JWK"),
            ({"kty": "oct", "k": "c2VjcmV0", "d": "x"}, "dpop_key JWK has kty 'oct'"),
            ("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
             "dpop_key cannot be loaded"),
        ],
    )
    def test_unusable_keys(self, given: Any, message: str) -> None:
        with pytest.raises(oauth_cc_auth.ConfigurationError, match=message) as caught:
            DPoPKey.load(given)
        assert "not a key" not in str(caught.value)


class TestNonces:
    def test_nonces_are_kept_per_origin(self) -> None:
        dpop = DPoP(DPoPKey.generate())
        assert dpop.note("https://api.example/a?x=1", {"DPoP-Nonce": "n-api"})
        assert dpop.note("https://auth.example/token", {"DPoP-Nonce": "n-auth"})
        assert not dpop.note("https://other.example/", {})
        nonce = read_proof(dpop.proof("GET", "https://API.example:443/b"))[1].get("nonce")
        assert nonce == "n-api"
        assert read_proof(dpop.proof("POST", TOKEN_URL))[1]["nonce"] == "n-auth"
        assert "nonce" not in read_proof(dpop.proof("GET", "https://other.example/"))[1]
        assert "nonce" not in read_proof(dpop.proof("GET", "http://api.example/b"))[1]

    @pytest.mark.parametrize("value", ['a"b', "a b", "a\\b", "", "x" * 1025, "é"])
    def test_malformed_nonces_are_ignored(self, value: str) -> None:
        assert dpop_nonce({"DPoP-Nonce": value}) is None

    def test_nonce_demand_is_a_dpop_challenge(self) -> None:
        assert nonce_demanded({"WWW-Authenticate": 'DPoP error="use_dpop_nonce"'})
        assert not nonce_demanded({"WWW-Authenticate": 'DPoP error="invalid_token"'})
        assert not nonce_demanded({})


class TestConfiguration:
    def test_cache_key_is_per_dpop_key(self) -> None:
        pem = ECKey.generate_key("P-256", private=True).as_pem(private=True)
        plain = build_auth(RequestsAuth)
        one, two = build_auth(RequestsAuth, dpop=True), build_auth(RequestsAuth, dpop=True)
        shared = [build_auth(RequestsAuth, dpop_key=pem) for _ in range(2)]
        keys = {a._config.cache_key for a in (plain, one, two, *shared)}
        assert len(keys) == 4
        assert shared[0]._config.cache_key == shared[1]._config.cache_key
        assert plain._config.dpop is None

    def test_bad_options(self) -> None:
        pem = ECKey.generate_key("P-256", private=True).as_pem(private=True)
        with pytest.raises(oauth_cc_auth.ConfigurationError, match="dpop=False"):
            build_auth(RequestsAuth, dpop=False, dpop_key=pem)
        with pytest.raises(oauth_cc_auth.ConfigurationError, match="dpop must be True or"):
            build_auth(RequestsAuth, dpop="yes")

    def test_from_env_and_from_config(self, tmp_path: Path) -> None:
        key = ECKey.generate_key("P-256", private=True)
        path = tmp_path / "dpop.pem"
        path.write_bytes(key.as_pem(private=True))
        env = {"OAUTH_CC_CLIENT_ID": "c", "OAUTH_CC_CLIENT_SECRET": SECRET,
               "OAUTH_CC_TOKEN_URL": TOKEN_URL, "OAUTH_CC_DPOP_KEY_FILE": str(path)}
        auth = RequestsAuth.from_env(env)
        assert auth._config.dpop is not None
        assert auth._config.dpop.thumbprint == key.thumbprint()
        env = {**env, "OAUTH_CC_DPOP": "true"}
        del env["OAUTH_CC_DPOP_KEY_FILE"]
        assert RequestsAuth.from_env(env)._config.dpop is not None
        config = {"client_id": "c", "client_secret": SECRET, "token_url": TOKEN_URL,
                  "dpop": False}
        assert RequestsAuth.from_config(config)._config.dpop is None

    def test_key_never_in_repr(self) -> None:
        key = ECKey.generate_key("P-256", private=True)
        auth = build_auth(RequestsAuth, dpop_key=key.as_dict(private=True))
        d = key.as_dict(private=True)["d"]
        assert isinstance(d, str)
        for text in (repr(auth), repr(auth._config), repr(auth._manager.dpop)):
            assert d not in text


class TestTokenEndpoint:
    def test_token_request_carries_a_proof_for_the_token_url(self, harness: Harness) -> None:
        harness.server.answer_next(Reply(json=DPOP_TOKEN))
        harness.server.answer_next(Reply(json={"ok": True}), endpoint="resource")
        auth = harness.auth(dpop=True)
        assert harness.get(auth).status_code == 200
        [request] = harness.server.received_at("token")
        header, claims = read_proof(request.headers["dpop"])
        assert header["jwk"] == auth._config.dpop.public_jwk
        assert (claims["htm"], claims["htu"]) == ("POST", TOKEN_URL)
        assert "ath" not in claims

    def test_nonce_demanded_is_sent_once_without_spending_a_retry(
        self, harness: Harness
    ) -> None:
        harness.server.answer_next(
            Reply(400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "n-1"}),
            Reply(json=DPOP_TOKEN),
        )
        harness.server.answer_next(Reply(json={"ok": True}), endpoint="resource")
        auth = harness.auth(dpop=True, max_retries=0)
        assert harness.get(auth).status_code == 200
        first, second = harness.server.received_at("token")
        assert "nonce" not in read_proof(first.headers["dpop"])[1]
        _, claims = read_proof(second.headers["dpop"])
        assert claims["nonce"] == "n-1"
        assert claims["jti"] != read_proof(first.headers["dpop"])[1]["jti"]

    def test_a_second_nonce_demand_is_the_error(self, harness: Harness) -> None:
        demand = Reply(400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "n-1"})
        harness.server.answer_next(demand, demand)
        auth = harness.auth(dpop=True)
        with pytest.raises(oauth_cc_auth.TokenRequestError) as caught:
            harness.get(auth)
        assert caught.value.error == "use_dpop_nonce"
        assert len(harness.server.received_at("token")) == 2

    def test_use_dpop_nonce_without_a_nonce_is_not_re_sent(self, harness: Harness) -> None:
        harness.server.answer_next(Reply(400, json={"error": "use_dpop_nonce"}))
        with pytest.raises(oauth_cc_auth.TokenRequestError):
            harness.get(harness.auth(dpop=True))
        assert len(harness.server.received_at("token")) == 1

    def test_bearer_answer_is_used_as_bearer_with_a_warning(
        self, harness: Harness, caplog: pytest.LogCaptureFixture
    ) -> None:
        harness.server.answer_next(
            Reply(json={"access_token": "plain-1", "token_type": "Bearer", "expires_in": 60}))
        auth = harness.auth(dpop=True)
        with caplog.at_level(logging.WARNING, logger="oauth_cc_auth"):
            assert harness.get(auth).status_code == 200
        assert "answered the DPoP token request" in caplog.text
        [api] = harness.server.received_at("resource")
        assert api.headers["authorization"] == "Bearer plain-1"
        assert "dpop" not in api.headers

    def test_dpop_token_without_dpop_configured_is_refused(self, harness: Harness) -> None:
        harness.server.answer_next(Reply(json=DPOP_TOKEN))
        with pytest.raises(oauth_cc_auth.TokenResponseError, match="pass dpop=True") as caught:
            harness.get(harness.auth())
        assert "dpop-tok-1" not in str(caught.value)


class TestAPI:
    def test_proof_on_every_api_request(self, harness: Harness) -> None:
        harness.server.answer_next(Reply(json=DPOP_TOKEN))
        harness.server.answer_next(*[Reply(json={"ok": True})] * 3, endpoint="resource")
        auth = harness.auth(dpop=True)
        for _ in range(3):
            assert harness.get(auth, API_URL + "?page=1").status_code == 200
        sent = harness.server.received_at("resource")
        jtis = set()
        for request in sent:
            assert request.headers["authorization"] == "DPoP dpop-tok-1"
            _, claims = read_proof(request.headers["dpop"])
            assert (claims["htm"], claims["htu"]) == ("GET", API_URL)
            assert claims["ath"] == ath("dpop-tok-1")
            jtis.add(claims["jti"])
        assert len(jtis) == 3
        assert len(harness.server.received_at("token")) == 1

    def test_api_nonce_demand_is_re_sent_once_and_is_not_a_renewal(
        self, harness: Harness
    ) -> None:
        harness.server.answer_next(Reply(json=DPOP_TOKEN))
        challenge = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "api-1"}
        harness.server.answer_next(
            Reply(401, json={"error": "use_dpop_nonce"}, headers=challenge),
            Reply(json={"ok": True}),
            endpoint="resource",
        )
        auth = harness.auth(dpop=True)
        response = harness.get(auth, body=b"payload")
        assert response.status_code == 200
        first, second = harness.server.received_at("resource")
        assert second.body == b"payload"
        assert second.headers["authorization"] == "DPoP dpop-tok-1"
        assert "nonce" not in read_proof(first.headers["dpop"])[1]
        assert read_proof(second.headers["dpop"])[1]["nonce"] == "api-1"
        assert len(harness.server.received_at("token")) == 1

    def test_a_nonce_given_on_any_answer_is_used_next(self, harness: Harness) -> None:
        harness.server.answer_next(Reply(json=DPOP_TOKEN))
        harness.server.answer_next(
            Reply(json={"ok": True}, headers={"DPoP-Nonce": "later"}),
            Reply(json={"ok": True}),
            endpoint="resource",
        )
        auth = harness.auth(dpop=True)
        harness.get(auth)
        harness.get(auth)
        first, second = harness.server.received_at("resource")
        assert "nonce" not in read_proof(first.headers["dpop"])[1]
        assert read_proof(second.headers["dpop"])[1]["nonce"] == "later"

    def test_401_after_the_nonce_re_send_renews_the_token(self, harness: Harness) -> None:
        harness.server.answer_next(
            Reply(json=DPOP_TOKEN), Reply(json={**DPOP_TOKEN, "access_token": "dpop-tok-2"})
        )
        challenge = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n"}
        harness.server.answer_next(
            Reply(401, json={}, headers=challenge),
            Reply(401, json={}, headers={"WWW-Authenticate": 'DPoP error="invalid_token"'}),
            Reply(json={"ok": True}),
            endpoint="resource",
        )
        assert harness.get(harness.auth(dpop=True)).status_code == 200
        sent = harness.server.received_at("resource")
        assert [r.headers["authorization"] for r in sent] == [
            "DPoP dpop-tok-1", "DPoP dpop-tok-1", "DPoP dpop-tok-2"]
        assert read_proof(sent[2].headers["dpop"])[1]["ath"] == ath("dpop-tok-2")
        assert len(harness.server.received_at("token")) == 2


class TestDiscovery:
    ISSUER = "https://auth.example"

    def test_server_not_accepting_the_keys_algorithm(self, harness: Harness) -> None:
        harness.server.metadata_fields["dpop_signing_alg_values_supported"] = ["RS256", "PS256"]
        auth = harness.auth(issuer=self.ISSUER, token_url=None, dpop=True)
        with pytest.raises(oauth_cc_auth.ConfigurationError,
                           match=r"with ES256 .* it accepts RS256, PS256"):
            harness.get(auth)
        assert harness.server.received_at("token") == []

    def test_server_accepting_it(self, harness: Harness) -> None:
        harness.server.metadata_fields["dpop_signing_alg_values_supported"] = ["ES256"]
        harness.server.answer_next(Reply(json=DPOP_TOKEN))
        harness.server.answer_next(Reply(json={"ok": True}), endpoint="resource")
        auth = harness.auth(issuer=self.ISSUER, token_url=None, dpop=True)
        assert harness.get(auth).status_code == 200
        [token_request] = harness.server.received_at("token")
        assert read_proof(token_request.headers["dpop"])[1]["htu"] == auth.token_url
