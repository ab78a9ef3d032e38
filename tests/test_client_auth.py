"""Client authentication as the token endpoint sees it: RFC 6749 §2.3.1 Basic, RFC 7523
assertions signed for every token request, external assertions read for every token request,
and the configuration errors of each, through all five client flavours."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import pytest
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jws, jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

import oauth_cc_auth
from oauth_cc_auth import ConfigurationError, MemoryCache
from oauth_cc_auth._client_auth import ASSERTION_TYPE, basic_authorization
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import EmulatedClient, Received, Reply
from tests.conftest import CLIENT_ID, TOKEN_URL, Harness, build_auth

ASSERTION_TYPE_FORM = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
JWT_SECRET = "client-secret-jwt-shared-secret-0123456789abcdef"


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


RSA_PEM = _rsa_pem()
RSA_PUBLIC = RSAKey.import_key(RSA_PEM)
EC_KEY = ECKey.generate_key("P-256")
EC_JWK = {**EC_KEY.as_dict(private=True), "kid": "ec-key-1"}


def ok(response: Any) -> None:
    assert response.status_code == 200


def keyed(**options: Any) -> Any:
    """A requests flavour object without a client secret unless *options* give one: these
    tests build objects to look at what they would send, or at how they are refused."""
    options.setdefault("client_secret", None)
    return build_auth(RequestsAuth, **options)


def register(harness: Harness, client_id: str = CLIENT_ID, *, secret: str | None = None,
             public_key: dict[str, Any] | None = None) -> None:
    """Let the harness's emulator authenticate *client_id* by *secret* (also the key of a
    client_secret_jwt assertion), or by *public_key* (private_key_jwt), as a strict
    authorization server does."""
    jwks = {"keys": [public_key]} if public_key is not None else None
    harness.server.register_client(EmulatedClient("rfc6749", client_id, secret, jwks=jwks))


def fields(recorded: Received) -> dict[str, str]:
    parsed = parse_qs(recorded.body.decode(), keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in parsed.values())
    return {name: values[0] for name, values in parsed.items()}


def claims_of(assertion: str, key: Any, alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of *assertion*, its signature verified with *key*."""
    token = jwt.decode(assertion, key, algorithms=[alg])
    return dict(token.header), dict(token.claims)


def three_token_requests(harness: Harness, auth: Any) -> list[Received]:
    """Three API requests, each needing a new token (the tokens live an hour)."""
    for _ in range(3):
        ok(harness.get(auth))
        harness.clock.advance(3600)
    assert len(harness.server.received_at("resource")) == 3
    return harness.server.received_at("token")


# -- RFC 6749 §2.3.1 Basic ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "secret", "form_encoded"),
    [
        ("client-1", "s3cr3t+/=", "client-1:s3cr3t%2B%2F%3D"),
        ("id:with:colons", "pa ss%:word", "id%3Awith%3Acolons:pa+ss%25%3Aword"),
        ("cliënt", "sécret€", "cli%C3%ABnt:s%C3%A9cret%E2%82%AC"),
        # RFC 3986 unreserved characters may stay as they are (~ included); * may not.
        (12345, "a~b_c.d-e*", "12345:a~b_c.d-e%2A"),
    ],
)
def test_basic_header_is_rfc6749_form_encoding(
    client_id: str | int, secret: str, form_encoded: str
) -> None:
    # The expected values are written out by hand from RFC 6749 Appendix B
    # (application/x-www-form-urlencoded, UTF-8), not computed by the code under test.
    header = basic_authorization(client_id, secret)
    assert header == "Basic " + base64.b64encode(form_encoded.encode()).decode()


@pytest.mark.slow
@given(st.text(min_size=1), st.text(min_size=1))
def test_basic_header_round_trips_through_a_strict_server(client_id: str, secret: str) -> None:
    try:
        client_id.encode(), secret.encode()
    except UnicodeEncodeError:
        return  # no UTF-8 form: refused at construction
    scheme, _, value = basic_authorization(client_id, secret).partition(" ")
    assert scheme == "Basic"
    decoded = base64.b64decode(value, validate=True).decode("ascii")
    got_id, colon, got_secret = decoded.partition(":")
    assert colon
    assert (unquote_plus(got_id), unquote_plus(got_secret)) == (client_id, secret)


def test_basic_through_every_flavour(harness: Harness) -> None:
    register(harness, secret="pa+ss/w=rd%:é")  # the emulator decodes the header as RFC 6749 says
    auth = harness.auth(auth_method="client_secret_basic", client_secret="pa+ss/w=rd%:é")
    ok(harness.get(auth))
    [token_request] = harness.server.received_at("token")
    expected = base64.b64encode(b"client-1:pa%2Bss%2Fw%3Drd%25%3A%C3%A9").decode()
    assert token_request.headers["authorization"] == f"Basic {expected}"
    assert token_request.body == b"grant_type=client_credentials"


# -- assertions signed for every token request -------------------------------------------------


@pytest.mark.parametrize(
    ("options", "verify_key", "alg"),
    [
        ({"private_key": RSA_PEM}, RSA_PUBLIC, "RS256"),
        ({"private_key": RSA_PEM, "signing_alg": "PS256"}, RSA_PUBLIC, "PS256"),
        ({"private_key": EC_JWK}, ECKey.import_key(EC_JWK), "ES256"),
        ({"client_secret": JWT_SECRET, "auth_method": "client_secret_jwt"},
         OctKey.import_key(JWT_SECRET), "HS256"),
    ],
    ids=["rsa-pem", "rsa-ps256", "ec-jwk", "client-secret-jwt"],
)
def test_a_new_assertion_for_every_token_request(
    harness: Harness, options: dict[str, Any], verify_key: Any, alg: str
) -> None:
    if isinstance(verify_key, OctKey):
        register(harness, secret=JWT_SECRET)
    else:
        register(harness, public_key=verify_key.as_dict(private=False))
    options = {"client_secret": None, **options}
    auth = harness.auth(**options)
    token_requests = three_token_requests(harness, auth)
    assert len(token_requests) == 3
    seen: set[str] = set()
    for recorded in token_requests:
        assert recorded.headers["content-type"] == "application/x-www-form-urlencoded"
        assert "authorization" not in recorded.headers
        body = recorded.body.decode()
        assert body.startswith(
            "grant_type=client_credentials&client_id=client-1"
            f"&client_assertion_type={ASSERTION_TYPE_FORM}&client_assertion="
        )
        form = fields(recorded)
        assert set(form) == {"grant_type", "client_id", "client_assertion_type",
                             "client_assertion"}
        assert form["client_assertion_type"] == ASSERTION_TYPE
        header, claims = claims_of(form["client_assertion"], verify_key, alg)
        assert header["alg"] == alg
        assert claims["iss"] == claims["sub"] == CLIENT_ID
        assert claims["aud"] == TOKEN_URL
        assert claims["exp"] - claims["iat"] == 60
        assert claims["jti"] not in seen
        seen.add(claims["jti"])
        assert "client_secret" not in body
    if "private_key" in options and isinstance(options["private_key"], dict):
        assert header["kid"] == "ec-key-1"  # taken from the JWK


def test_retries_sign_anew(harness: Harness) -> None:
    register(harness, public_key={**RSA_PUBLIC.as_dict(private=False), "kid": "k1"})
    harness.server.answer_next(Reply(503), Reply(429))
    auth = harness.auth(client_secret=None, private_key=RSA_PEM, assertion_lifetime=30,
                        assertion_audience="https://auth.example", private_key_id="k1")
    ok(harness.get(auth))
    assertions = [fields(r)["client_assertion"] for r in harness.server.received_at("token")]
    assert len(assertions) == 3
    decoded = [claims_of(a, RSA_PUBLIC, "RS256") for a in assertions]
    assert len({claims["jti"] for _, claims in decoded}) == 3
    for header, claims in decoded:
        assert header["kid"] == "k1"
        assert claims["aud"] == "https://auth.example"
        assert claims["exp"] - claims["iat"] == 30


def _certificate(private_key: Any) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oauth-cc-auth test")])
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(private_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_certificate_adds_x5t_s256_as_entra_wants(tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(RSA_PEM.encode(), None)
    pem = _certificate(key)
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_text(RSA_PEM)
    for certificate in (pem, pem.decode(), str(tmp_path / "cert.pem"), tmp_path / "cert.pem"):
        auth = keyed(private_key=str(tmp_path / "key.pem"), certificate=certificate,
                     signing_alg="PS256")
        assertion = auth._manager.next_request()[1][0]
        header, _ = claims_of(assertion, RSA_PUBLIC, "PS256")
        assert header["x5t#S256"] == expected
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ConfigurationError, match="not the certificate of private_key"):
        keyed(private_key=RSA_PEM, certificate=_certificate(other))


# -- external assertions -----------------------------------------------------------------------


#: The client that the external assertions name.
WORKLOAD = "wl"


def _external_assertion(n: int) -> str:
    """An assertion as a workload-identity issuer would sign it (with Authlib)."""
    assertion = private_key_jwt_sign(EC_KEY, client_id=WORKLOAD, token_endpoint=TOKEN_URL,
                                     alg="ES256", claims={"n": n})
    return assertion.decode() if isinstance(assertion, bytes) else str(assertion)


def test_client_assertion_file_is_read_for_every_token_request(
    harness: Harness, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    written = []

    def rotate() -> None:  # as the kubelet does: a new file moved into place
        written.append(_external_assertion(len(written)))
        (tmp_path / "token.new").write_text(written[-1] + "\n")
        os.replace(tmp_path / "token.new", path)

    register(harness, WORKLOAD, public_key=EC_KEY.as_dict(private=False))
    auth = harness.auth(client_id=WORKLOAD, client_secret=None, client_assertion=str(path))
    for _ in range(3):
        rotate()
        ok(harness.get(auth))
        harness.clock.advance(3600)
    sent = [fields(r)["client_assertion"] for r in harness.server.received_at("token")]
    assert sent == written  # each one as it was on disk, newline stripped


def test_client_assertion_callable_is_called_for_every_token_request(harness: Harness) -> None:
    calls = []

    def assertion() -> str:
        calls.append(_external_assertion(len(calls)))
        return calls[-1]

    register(harness, WORKLOAD, public_key=EC_KEY.as_dict(private=False))
    auth = harness.auth(client_id=WORKLOAD, client_secret=None, client_assertion=assertion)
    three_token_requests(harness, auth)
    assert [fields(r)["client_assertion"] for r in harness.server.received_at("token")] == calls


def test_client_assertion_file_problems_at_token_time(tmp_path: Path) -> None:
    path = tmp_path / "token"
    auth = keyed(client_id=WORKLOAD, client_assertion=path)
    with pytest.raises(ConfigurationError, match="client_assertion file cannot be read") as info:
        auth.get_token()
    assert str(tmp_path) not in str(info.value)
    path.write_text("not a jwt")
    with pytest.raises(ConfigurationError, match="gave no JWT"):
        auth.get_token()
    path.write_bytes(b"e30." * 20_000)
    with pytest.raises(ConfigurationError, match="larger than"):
        auth.get_token()
    # A FIFO put there by someone else: refused, not waited on.
    path.unlink()
    os.mkfifo(path)
    done = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            auth.get_token()
        except BaseException as exc:
            errors.append(exc)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(10), "reading a FIFO hung"
    assert isinstance(errors[0], ConfigurationError)
    assert "not a regular file" in str(errors[0])


# -- configuration -----------------------------------------------------------------------------


def _encrypted_pem() -> str:
    key = serialization.load_pem_private_key(RSA_PEM.encode(), None)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    ).decode()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"private_key": RSA_PEM, "signing_alg": "ES256"}, "signing_alg 'ES256' cannot be used "
         "with this RSA private key; accepted: RS256, RS384, RS512, PS256, PS384, PS512"),
        ({"private_key": EC_JWK, "signing_alg": "RS256"}, "accepted: ES256$"),
        ({"private_key": "/nonexistent/key.pem"}, "private_key file cannot be read"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"},
         "cannot be loaded"),
        ({"private_key": _encrypted_pem()}, "private_key is encrypted"),
        ({"private_key": RSA_PUBLIC.as_dict(private=False)}, "public JWK"),
        ({"private_key": {"kty": "oct", "k": "c2VjcmV0", "d": "x"}}, "kty 'oct'"),
        ({"private_key": 42}, "must be PEM text, a path"),
        ({"auth_method": "private_key_jwt"}, "needs private_key= or client_assertion="),
        ({"private_key": RSA_PEM, "client_assertion": "t"}, "one of them"),
        ({"private_key": RSA_PEM, "client_secret": "s"}, "client_secret is not used"),
        ({"private_key": RSA_PEM, "auth_method": "client_secret_post", "client_secret": "s"},
         "private_key cannot be used with auth_method 'client_secret_post'"),
        ({"client_secret": "s", "signing_alg": "RS256"}, "signing_alg only apply"),
        ({"client_secret": JWT_SECRET, "auth_method": "client_secret_jwt",
          "signing_alg": "RS256"}, "accepted: HS256, HS384, HS512"),
        ({"client_assertion": "/t", "private_key_id": "k"}, "private_key_id cannot be used with "
         "client_assertion="),
        ({"client_assertion": _external_assertion(0)}, "not the assertion itself"),
        ({"client_assertion": 5}, "must be a callable or a path"),
        ({"private_key": RSA_PEM, "assertion_lifetime": 0}, "assertion_lifetime"),
        ({"private_key": RSA_PEM, "assertion_audience": ""}, "assertion_audience"),
        ({"client_assertion": "/t", "cache": "redis://:hunter2@127.0.0.1:1/0"},
         r"redis://:\*\*\*@127.0.0.1:1/0 encrypts tokens .* external client_assertion has "
         "neither: use the memory cache"),
    ],
)
def test_configuration_errors(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        keyed(**options)
    assert "PRIVATE KEY" not in str(info.value)
    assert info.value.__context__ is None or not isinstance(info.value.__context__, ValueError)


def test_seed_providers_take_only_the_secret_in_the_body() -> None:
    with pytest.raises(ConfigurationError, match=r"accepted: client_secret_post$"):
        keyed(private_key=RSA_PEM, provider="figure", token_url=None)


def test_from_env_and_from_config(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text(RSA_PEM)
    external = _external_assertion(1)
    (tmp_path / "token").write_text(external)
    env = {
        "OAUTH_CC_CLIENT_ID": "app",
        "OAUTH_CC_TOKEN_URL": TOKEN_URL,
        "OAUTH_CC_AUTH_METHOD": "private_key_jwt",
        "OAUTH_CC_PRIVATE_KEY_FILE": str(tmp_path / "key.pem"),
        "OAUTH_CC_PRIVATE_KEY_ID": "kid-9",
        "OAUTH_CC_SIGNING_ALG": "PS384",
        "OAUTH_CC_ASSERTION_LIFETIME": "45",
    }
    auth = RequestsAuth.from_env(env, cache=MemoryCache())
    _, (assertion,) = auth._manager.next_request()
    header, claims = claims_of(assertion, RSA_PUBLIC, "PS384")
    assert (header["kid"], claims["iss"], claims["exp"] - claims["iat"]) == ("kid-9", "app", 45)

    config = {"client_id": "wl", "token_url": TOKEN_URL,
              "client_assertion_file": str(tmp_path / "token")}
    auth = RequestsAuth.from_config(config, cache=MemoryCache())
    assert auth._manager.next_request()[1] == (external,)
    with pytest.raises(ConfigurationError, match="give private_key or private_key_file"):
        RequestsAuth.from_config({**config, "private_key": RSA_PEM, "private_key_file": "x"})
    with pytest.raises(ConfigurationError, match="private_key_file or client_assertion_file"):
        RequestsAuth.from_config({"client_id": "x", "token_url": TOKEN_URL})


def test_cache_keys_follow_the_key_never_hold_it() -> None:
    cache = MemoryCache()
    one = keyed(private_key=RSA_PEM, cache=cache)
    same = keyed(private_key=RSA_PEM, signing_alg="PS256", cache=cache)
    other = keyed(private_key=EC_JWK, cache=cache)
    assert one._manager.slot is same._manager.slot
    assert one._manager.slot is not other._manager.slot
    key_text = RSA_PEM.split("-----")[2].replace("\n", "")
    assert key_text not in one._config.cache_key
    for text in (repr(one), str(one), repr(one._config), repr(one._config.authentication)):
        assert "PRIVATE" not in text
        assert key_text[:40] not in text


# -- never shown -------------------------------------------------------------------------------


def test_assertion_echoed_by_the_server_is_redacted(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = harness.auth(client_secret=None, private_key=EC_JWK, max_retries=1)
    # The server quotes each assertion back, in a 503 (retried) and then in a refusal: each
    # token request waits at a gate until its answer, quoting it, is scripted.
    gate = harness.server.gate()
    raised: list[BaseException] = []

    def send() -> None:
        try:
            harness.get(auth)
        except BaseException as exc:  # looked at below
            raised.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    holder: list[str] = []
    for status, error in ((503, None), (400, "invalid_client")):
        assert gate.wait_for(1)
        holder.append(fields(harness.server.received_at("token")[-1])["client_assertion"])
        text = f"assertion {holder[-1]} refused"
        answer = {"error": text} if error is None else {"error": error, "error_description": text}
        harness.server.answer_next(Reply(status, json=answer))
        # The next request waits at a new gate.
        held, gate = gate, harness.server.gate()
        held.open()
    sender.join(30)
    gate.open()
    assert not sender.is_alive()
    [err] = raised
    assert isinstance(err, oauth_cc_auth.TokenRequestError)
    assert len(holder) == 2
    texts = [str(err), repr(err), str(err.description), *map(str, err.args)]
    texts += [r.getMessage() for r in caplog.records]
    texts += [str(v) for v in vars(err).values()]
    for assertion in holder:
        for part in assertion.split("."):
            assert not any(part in text for text in texts)
    assert "[REDACTED]" in str(err.description)
    for text in texts:
        assert "PRIVATE" not in text
        assert EC_JWK["d"] not in text


@pytest.mark.parametrize("harness", ["requests"], indirect=True)
def test_nothing_of_the_key_in_logs_or_the_file_cache(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    register(harness, public_key=RSA_PUBLIC.as_dict(private=False))
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    auth = harness.auth(client_secret=None, private_key=RSA_PEM, cache=f"file://{directory}")
    token = auth.get_token().access_token
    assert token == "tok-1"
    auth.close()
    # Another object with the same key reads the sealed entry; another key cannot.
    again = harness.auth(client_secret=None, private_key=RSA_PEM, cache=f"file://{directory}")
    assert again.get_token().access_token == token
    again.close()
    seen = [fields(request)["client_assertion"] for request in harness.server.received_at("token")]
    assert len(seen) == 1
    stored = b"".join(p.read_bytes() for p in directory.rglob("*") if p.is_file())
    names = " ".join(p.name for p in directory.rglob("*"))
    key_body = RSA_PEM.split("-----")[2].replace("\n", "")
    der = base64.b64decode(key_body)
    for text in (token.encode(), seen[0].encode(), key_body[:64].encode(), der[:64]):
        assert text not in stored
        assert text.decode("latin-1") not in names
    for record in caplog.records:
        message = record.getMessage()
        assert token not in message
        assert seen[0] not in message
        assert key_body[:64] not in message


def test_authlib_callables_are_called_per_token_request(harness: Harness) -> None:
    from authlib.oauth2.rfc7523 import ClientSecretJWT

    register(harness, secret=JWT_SECRET)
    auth = harness.auth(client_secret=JWT_SECRET, auth_method=ClientSecretJWT(TOKEN_URL))
    three_token_requests(harness, auth)
    jtis = {json.loads(jws.extract_compact(
        fields(r)["client_assertion"].encode()).payload)["jti"]
        for r in harness.server.received_at("token")}
    assert len(jtis) == 3

