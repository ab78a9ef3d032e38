"""Mutual TLS (RFC 8705): tls_client_auth and self_signed_tls_client_auth, and tokens bound to
the client certificate, over real TLS on 127.0.0.1 against the emulator (``ssl_context=``),
through every adapter flavour; the configuration checks; the discovered mTLS endpoint alias.

The PKI comes from trustme: a CA, the emulator's certificate for 127.0.0.1, a client
certificate it issued; and a self-signed client certificate made here.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import httpx2
import pytest
import requests
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey

from oauth_cc_auth import ConfigurationError, MemoryCache, TokenEndpointError, TokenRequestError
from oauth_cc_auth._config import build_config
from oauth_cc_auth._discovery import ServerMetadata, resolve
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import EmulatedClient, Emulator

#: Seconds any request of these tests may take before the test fails.
DEADLINE = 10.0
FLAVOURS = ["requests", "httpx-sync", "httpx-async", "httpx2-sync", "httpx2-async"]
CLASSES: dict[str, Any] = {"requests": RequestsAuth, "httpx": HttpxAuth, "httpx2": Httpx2Auth}
LIBS: dict[str, Any] = {"httpx": httpx, "httpx2": httpx2}
TLS_CLIENT = "mtls-client"
SELF_SIGNED_CLIENT = "self-signed-client"


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    server: trustme.LeafCert
    ca_file: str
    #: The CA-issued client certificate: key and certificate in one file, and apart.
    combined: str
    cert_file: str
    key_file: str
    subject_dn: str
    #: The self-signed client certificate and its key.
    self_signed: tuple[str, str]
    self_signed_pem: str
    self_signed_jwk: dict[str, Any]
    #: A key that belongs to neither certificate.
    other_key: str


def _self_signed(directory: Path) -> tuple[str, str, str, dict[str, Any]]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self-signed client")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / "self-signed.pem", directory / "self-signed-key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    jwk = ECKey.import_key(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)).as_dict()
    jwk["x5c"] = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
    return str(cert_path), str(key_path), cert_pem.decode(), jwk


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert("client.example", common_name=TLS_CLIENT)
    paths = {name: directory / f"{name}.pem" for name in ("ca", "combined", "cert", "key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["combined"]))
    client.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    client.private_key_pem.write_to_path(str(paths["key"]))
    subject = x509.load_pem_x509_certificate(client.cert_chain_pems[0].bytes()).subject
    cert_path, key_path, pem, jwk = _self_signed(directory)
    other = directory / "other-key.pem"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return Pki(ca, server, str(paths["ca"]), str(paths["combined"]), str(paths["cert"]),
               str(paths["key"]), subject.rfc4514_string(), (cert_path, key_path), pem, jwk,
               str(other))


def server_context(pki: Pki, verify_mode: ssl.VerifyMode = ssl.CERT_OPTIONAL) -> ssl.SSLContext:
    """The emulator's TLS: its certificate; client certificates requested (*verify_mode*)
    and verified against the CA and the self-signed certificate (its own CA)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.server.configure_cert(context)
    pki.ca.configure_trust(context)
    context.load_verify_locations(cadata=pki.self_signed_pem)
    context.verify_mode = verify_mode
    return context


def _register(server: Emulator, pki: Pki) -> None:
    server.register_client(EmulatedClient("rfc6749", TLS_CLIENT,
                                          tls_client_auth_subject_dn=pki.subject_dn))
    server.register_client(EmulatedClient("rfc6749", SELF_SIGNED_CLIENT,
                                          jwks={"keys": [pki.self_signed_jwk]}))
    server.register_client(EmulatedClient("rfc6749", "secret-client", "secret-0123456789"))


@pytest.fixture
def trusted(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> Pki:
    """The auth objects' own token clients trust the CA, as a user's environment says."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki.ca_file)
    monkeypatch.setenv("SSL_CERT_FILE", pki.ca_file)
    return pki


@pytest.fixture
def tls_server(trusted: Pki) -> Iterator[Emulator]:
    with Emulator(token_prefix="tok-", guard_every_path=True,
                  ssl_context=server_context(trusted)) as server:
        _register(server, trusted)
        yield server


def make_auth(flavour: str, client_id: str, secret: str | None = None, **options: Any) -> Any:
    options.setdefault("cache", MemoryCache())
    options.setdefault("backoff", 0.0)
    options.setdefault("timeout", DEADLINE)
    return CLASSES[flavour.split("-")[0]](client_id, secret, **options)


def obtain(flavour: str, auth: Any) -> Any:
    """A token through *flavour*'s own token client."""
    if flavour.endswith("async"):
        return asyncio.run(auth.aget_token())
    return auth.get_token()


def close(flavour: str, auth: Any) -> None:
    auth.close()


def _pair(cert: str | tuple[str, str]) -> tuple[str, str | None]:
    return (cert, None) if isinstance(cert, str) else cert


def api_get(flavour: str, auth: Any, url: str, ca_file: str, *, with_cert: bool) -> Any:
    """An API request through *flavour*'s client, presenting ``auth.cert`` if *with_cert*."""
    if flavour == "requests":
        with requests.Session() as session:
            session.auth, session.verify = auth, ca_file
            if with_cert:
                session.cert = auth.cert
            return session.get(url, timeout=DEADLINE)
    context = ssl.create_default_context(cafile=ca_file)
    if with_cert:
        context.load_cert_chain(*_pair(auth.cert))
    lib = LIBS[flavour.split("-")[0]]
    if flavour.endswith("async"):

        async def get() -> Any:
            async with lib.AsyncClient(auth=auth, verify=context, timeout=DEADLINE) as client:
                return await client.get(url)

        return asyncio.run(get())
    with lib.Client(auth=auth, verify=context, timeout=DEADLINE) as client:
        return client.get(url)


def _form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode()))


# -- over TLS, every flavour ---------------------------------------------------------------------


class TestTokenRequests:
    """Token requests over TLS presenting the client certificate, through all five flavours."""

    @pytest.mark.parametrize("flavour", FLAVOURS)
    def test_tls_client_auth_and_a_bound_token(self, flavour: str, tls_server: Emulator,
                                               trusted: Pki) -> None:
        auth = make_auth(flavour, TLS_CLIENT, token_url=tls_server.token_url("rfc6749"),
                         auth_method="tls_client_auth", cert=trusted.combined)
        try:
            assert obtain(flavour, auth).access_token == "tok-1"
            (sent,) = tls_server.received_at("token")
            # RFC 8705 §2: the client named in the body, no secret anywhere.
            assert _form(sent.body) == {"grant_type": "client_credentials",
                                        "client_id": TLS_CLIENT}
            assert "authorization" not in sent.headers
            api = f"{tls_server.url}/api"
            good = api_get(flavour, auth, api, trusted.ca_file, with_cert=True)
            assert (good.status_code, good.json()["client_id"]) == (200, TLS_CLIENT)
            thumbprint = auth._config.authentication.certificate.thumbprint
            assert good.json()["cnf"] == {"x5t#S256": thumbprint}
            # Bound (§3): without the certificate the API refuses it, renewed or not.
            bare = api_get(flavour, auth, api, trusted.ca_file, with_cert=False)
            assert bare.status_code == 401
            assert bare.json()["error_description"] == (
                "the token is bound to another client certificate")
        finally:
            close(flavour, auth)

    @pytest.mark.parametrize("flavour", FLAVOURS)
    def test_self_signed_tls_client_auth(self, flavour: str, tls_server: Emulator,
                                         trusted: Pki) -> None:
        auth = make_auth(flavour, SELF_SIGNED_CLIENT, token_url=tls_server.token_url("rfc6749"),
                         auth_method="self_signed_tls_client_auth", cert=trusted.self_signed)
        try:
            assert obtain(flavour, auth).access_token == "tok-1"
            (sent,) = tls_server.received_at("token")
            assert _form(sent.body) == {"grant_type": "client_credentials",
                                        "client_id": SELF_SIGNED_CLIENT}
            assert auth.cert == trusted.self_signed
        finally:
            close(flavour, auth)

    def test_the_method_follows_from_a_certificate_without_a_secret(
        self, tls_server: Emulator, trusted: Pki
    ) -> None:
        with make_auth("requests", TLS_CLIENT, token_url=tls_server.token_url("rfc6749"),
                       cert=(trusted.cert_file, trusted.key_file)) as auth:
            assert auth._config.client.auth_method == "tls_client_auth"
            assert auth.get_token().access_token == "tok-1"

    def test_a_certificate_with_a_secret_binds_the_token(self, tls_server: Emulator,
                                                         trusted: Pki) -> None:
        auth = make_auth("httpx-sync", "secret-client", "secret-0123456789",
                         token_url=tls_server.token_url("rfc6749"), cert=trusted.combined)
        try:
            auth.get_token()
            (sent,) = tls_server.received_at("token")
            assert _form(sent.body)["client_secret"] == "secret-0123456789"
            api = f"{tls_server.url}/api"
            assert api_get("httpx-sync", auth, api, trusted.ca_file,
                           with_cert=True).status_code == 200
            assert api_get("httpx-sync", auth, api, trusted.ca_file,
                           with_cert=False).status_code == 401
        finally:
            auth.close()

    def test_an_unbound_token_needs_no_certificate(self, tls_server: Emulator,
                                                   trusted: Pki) -> None:
        with make_auth("requests", "secret-client", "secret-0123456789",
                       token_url=tls_server.token_url("rfc6749")) as auth:
            assert auth.cert is None
            response = api_get("requests", auth, f"{tls_server.url}/api", trusted.ca_file,
                               with_cert=False)
            assert response.status_code == 200
            assert "cnf" not in response.json()


class TestRefusals:
    """What the server refuses: no certificate, or the certificate of someone else."""

    @pytest.mark.parametrize("flavour", ["requests", "httpx-async"])
    def test_no_certificate_is_invalid_client(self, flavour: str, tls_server: Emulator,
                                              trusted: Pki) -> None:
        # A token client given by the user is used as it is: here, without the certificate.
        lib_client: Any
        if flavour == "requests":
            lib_client = requests.Session()
            options: dict[str, Any] = {"session": lib_client}
        else:
            lib_client = httpx.AsyncClient(verify=ssl.create_default_context(
                cafile=trusted.ca_file))
            options = {"async_client": lib_client}
        auth = make_auth(flavour, TLS_CLIENT, token_url=tls_server.token_url("rfc6749"),
                         auth_method="tls_client_auth", cert=trusted.combined, **options)
        try:
            with pytest.raises(TokenRequestError) as info:
                obtain(flavour, auth)
            assert (info.value.status_code, info.value.error) == (401, "invalid_client")
            assert "no client certificate" in str(info.value)
        finally:
            close(flavour, auth)
            if flavour == "requests":
                lib_client.close()
            else:
                asyncio.run(lib_client.aclose())

    def test_another_clients_certificate_is_invalid_client(self, tls_server: Emulator,
                                                           trusted: Pki) -> None:
        # The self-signed certificate verifies (the server trusts it) but its subject DN is
        # not the one registered for the tls_client_auth client.
        with make_auth("requests", TLS_CLIENT, token_url=tls_server.token_url("rfc6749"),
                       cert=trusted.self_signed) as auth, pytest.raises(TokenRequestError) as info:
            auth.get_token()
        assert (info.value.status_code, info.value.error) == (401, "invalid_client")

    def test_a_server_requiring_a_certificate_fails_the_handshake(self, trusted: Pki) -> None:
        with Emulator(ssl_context=server_context(trusted, ssl.CERT_REQUIRED)) as server:
            _register(server, trusted)
            with requests.Session() as session:
                auth = make_auth("requests", TLS_CLIENT, token_url=server.token_url("rfc6749"),
                                 cert=trusted.combined, session=session, max_retries=0)
                with pytest.raises(TokenEndpointError):
                    auth.get_token()
            assert server.received_at("token") == []  # never got past the handshake
            # With the certificate, the same server answers.
            with make_auth("requests", TLS_CLIENT, token_url=server.token_url("rfc6749"),
                           cert=trusted.combined) as auth:
                assert auth.get_token().access_token


# -- discovery -----------------------------------------------------------------------------------


class TestDiscovery:
    """RFC 8705 §5: the ``mtls_endpoint_aliases`` token endpoint, with a certificate."""

    @pytest.mark.parametrize("flavour", ["requests", "httpx2-async"])
    def test_the_alias_is_preferred(self, flavour: str, tls_server: Emulator,
                                    trusted: Pki) -> None:
        tls_server.add_token_path("/mtls/token")
        tls_server.metadata_fields.update({
            "mtls_endpoint_aliases": {"token_endpoint": f"{tls_server.url}/mtls/token"},
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "tls_client_auth"],
        })
        auth = make_auth(flavour, TLS_CLIENT, issuer=tls_server.issuer, cert=trusted.combined)
        try:
            obtain(flavour, auth)
            assert auth.token_url == f"{tls_server.url}/mtls/token"
            (sent,) = tls_server.received_at("token")
            assert urlsplit(sent.url).path == "/mtls/token"
            assert _form(sent.body)["client_id"] == TLS_CLIENT
        finally:
            close(flavour, auth)

    def _metadata(self, **aliases: str) -> ServerMetadata:
        return ServerMetadata("https://as.example", "https://as.example/token",
                              ("client_secret_post", "tls_client_auth",
                               "self_signed_tls_client_auth"),
                              mtls_endpoint_aliases=aliases)

    def test_without_a_certificate_the_alias_is_not_used(self) -> None:
        config = build_config("id", "secret", issuer="https://as.example")
        resolved = resolve(config, self._metadata(token_endpoint="https://mtls.as.example/t"))
        assert resolved.client.token_url == "https://as.example/token"

    def test_the_alias_is_checked_like_the_endpoint(self, pki: Pki) -> None:
        config = build_config("id", issuer="https://as.example", cert=pki.combined)
        with pytest.raises(ConfigurationError, match="mtls_endpoint_aliases token_endpoint"):
            resolve(config, self._metadata(token_endpoint="http://mtls.as.example/t"))
        resolved = resolve(config, self._metadata())  # no alias: the endpoint
        assert (resolved.client.token_url, resolved.client.auth_method) == (
            "https://as.example/token", "tls_client_auth")

    def test_a_server_without_mtls_methods_is_a_clear_error(self, pki: Pki) -> None:
        config = build_config("id", issuer="https://as.example", cert=pki.combined)
        metadata = ServerMetadata("https://as.example", "https://as.example/token",
                                  ("client_secret_basic",))
        with pytest.raises(ConfigurationError, match="offers no mutual-TLS"):
            resolve(config, metadata)


# -- configuration -------------------------------------------------------------------------------


class TestConfiguration:
    """cert= checked at construction; the private key never shown."""

    def test_forms_of_cert(self, pki: Pki) -> None:
        for cert, expected in (
            (pki.combined, pki.combined),
            (Path(pki.combined), pki.combined),
            ((pki.cert_file, pki.key_file), (pki.cert_file, pki.key_file)),
            ([Path(pki.cert_file), pki.key_file], (pki.cert_file, pki.key_file)),
        ):
            auth = RequestsAuth("id", token_url="https://as.example/token", cert=cert)
            assert auth.cert == expected

    @pytest.mark.parametrize(("options", "message"), [
        ({"auth_method": "tls_client_auth"}, "needs cert="),
        ({"auth_method": "self_signed_tls_client_auth"}, "needs cert="),
        ({"cert": 42}, "cert must be a path"),
        ({"cert": ("a",)}, "pair must be"),
        ({"cert": ""}, "must be a path"),
        ({"cert": "-----BEGIN CERTIFICATE-----\nMIIB\n"}, "must be a path to a PEM file$"),
    ])
    def test_errors_without_files(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigurationError, match=message):
            RequestsAuth("id", token_url="https://as.example/token", **options)

    def test_a_missing_file_is_named_by_its_reason_only(self, tmp_path: Path) -> None:
        missing = str(tmp_path / "secret-name.pem")
        with pytest.raises(ConfigurationError, match="cert file cannot be read") as info:
            RequestsAuth("id", token_url="https://as.example/token", cert=missing)
        assert "secret-name" not in str(info.value)

    def test_a_key_of_another_certificate(self, pki: Pki) -> None:
        with pytest.raises(ConfigurationError, match="do not match"):
            RequestsAuth("id", token_url="https://as.example/token",
                         cert=(pki.cert_file, pki.other_key))

    def test_no_key_or_no_certificate(self, pki: Pki) -> None:
        with pytest.raises(ConfigurationError, match="no PEM private key"):
            RequestsAuth("id", token_url="https://as.example/token", cert=pki.cert_file)
        with pytest.raises(ConfigurationError, match="no PEM certificate"):
            RequestsAuth("id", token_url="https://as.example/token", cert=pki.key_file)

    def test_an_encrypted_key(self, pki: Pki, tmp_path: Path) -> None:
        key = serialization.load_pem_private_key(Path(pki.key_file).read_bytes(), None)
        encrypted = tmp_path / "encrypted.pem"
        encrypted.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass")))
        with pytest.raises(ConfigurationError, match="encrypted"):
            RequestsAuth("id", token_url="https://as.example/token",
                         cert=(pki.cert_file, str(encrypted)))

    def test_a_broken_key_is_not_echoed(self, pki: Pki, tmp_path: Path) -> None:
        broken = tmp_path / "broken.pem"
        body = "TOPSECRETKEYMATERIAL" * 4
        broken.write_text(f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
        with pytest.raises(ConfigurationError, match="cannot be loaded") as info:
            RequestsAuth("id", token_url="https://as.example/token",
                         cert=(pki.cert_file, str(broken)))
        assert "TOPSECRET" not in str(info.value)
        assert info.value.__context__ is None
        assert info.value.__cause__ is None

    @pytest.mark.parametrize("method", ["tls_client_auth", "self_signed_tls_client_auth"])
    def test_a_secret_or_a_key_with_a_tls_method(self, pki: Pki, method: str) -> None:
        with pytest.raises(ConfigurationError, match="client_secret is not used"):
            RequestsAuth("id", "secret", token_url="https://as.example/token",
                         auth_method=method, cert=pki.combined)
        with pytest.raises(ConfigurationError, match="private_key cannot be used"):
            RequestsAuth("id", token_url="https://as.example/token", auth_method=method,
                         cert=pki.combined, private_key=pki.key_file)

    def test_the_key_is_never_shown(self, pki: Pki) -> None:
        key_text = Path(pki.key_file).read_text().splitlines()[1]
        auth = RequestsAuth("id", token_url="https://as.example/token", cert=pki.combined)
        shown = " ".join((repr(auth), repr(auth._config), repr(auth._config.authentication),
                          repr(auth._config.authentication.certificate)))
        assert key_text not in shown
        assert "key_material" not in shown

    def test_cache_identity_and_key_material(self, pki: Pki) -> None:
        tls = build_config("id", token_url="https://as.example/token", cert=pki.combined)
        assert tls.authentication.identity.startswith("cert:")
        assert tls.authentication.sealing_material  # the private key's bytes
        plain = build_config("id", "secret", token_url="https://as.example/token")
        bound = build_config("id", "secret", token_url="https://as.example/token",
                             cert=pki.combined)
        assert plain.cache_key != bound.cache_key  # a bound token is no use to another
        assert bound.authentication.sealing_material == b"secret"

    def test_providers(self, pki: Pki) -> None:
        for name in ("keycloak", "okta", "auth0", "pingone"):
            for method in ("tls_client_auth", "self_signed_tls_client_auth"):
                assert method in build_config(
                    "id", provider=name, token_url=_preset_url(name), cert=pki.combined,
                    auth_method=method, extra={"audience": "a"} if name == "auth0" else None,
                ).provider.auth_methods
        with pytest.raises(ConfigurationError, match="not accepted by provider 'cognito'"):
            build_config("id", provider="cognito", cert=pki.combined, scope="a/b",
                         token_url="https://x.auth.us-east-1.amazoncognito.com/oauth2/token")


def _preset_url(name: str) -> str:
    return {
        "keycloak": "https://kc.example/realms/r/protocol/openid-connect/token",
        "okta": "https://o.okta.com/oauth2/default/v1/token",
        "auth0": "https://t.auth0.com/oauth/token",
        "pingone": "https://auth.pingone.com/env-1/as/token",
    }[name]


class TestSettings:
    """``from_config`` and ``from_env``: ``cert``, ``cert_file`` and ``cert_key_file``."""

    def test_from_config(self, pki: Pki) -> None:
        base = {"client_id": "id", "token_url": "https://as.example/token"}
        auth = RequestsAuth.from_config({**base, "cert_file": pki.combined})
        assert (auth.cert, auth._config.client.auth_method) == (pki.combined, "tls_client_auth")
        auth = RequestsAuth.from_config({**base, "cert_file": pki.cert_file,
                                         "cert_key_file": pki.key_file})
        assert auth.cert == (pki.cert_file, pki.key_file)
        auth = RequestsAuth.from_config({**base, "cert": [pki.cert_file, pki.key_file],
                                         "auth_method": "self_signed_tls_client_auth"})
        assert auth.cert == (pki.cert_file, pki.key_file)
        with pytest.raises(ConfigurationError, match="cert_key_file needs cert_file"):
            RequestsAuth.from_config({**base, "cert_key_file": pki.key_file})
        with pytest.raises(ConfigurationError, match="give cert or cert_file"):
            RequestsAuth.from_config({**base, "cert": pki.combined, "cert_file": pki.combined})

    def test_from_env(self, pki: Pki) -> None:
        auth = HttpxAuth.from_env({
            "OAUTH_CC_CLIENT_ID": "id", "OAUTH_CC_TOKEN_URL": "https://as.example/token",
            "OAUTH_CC_AUTH_METHOD": "tls_client_auth", "OAUTH_CC_CERT_FILE": pki.cert_file,
            "OAUTH_CC_CERT_KEY_FILE": pki.key_file,
        })
        assert auth.cert == (pki.cert_file, pki.key_file)
        auth.close()


def test_the_token_command(tls_server: Emulator, trusted: Pki) -> None:
    from tests.test_cli import run

    result = run("token", "--token-url", tls_server.token_url("rfc6749"), "--client-id",
                 TLS_CLIENT, "--cert-file", trusted.cert_file, "--cert-key-file",
                 trusted.key_file, env={"REQUESTS_CA_BUNDLE": trusted.ca_file,
                                        "SSL_CERT_FILE": trusted.ca_file}, timeout=DEADLINE * 3)
    assert result.returncode == 0, result.stderr  # no secret, and no prompt for one
    assert result.stdout.strip() == "tok-1"


def test_a_shared_cache_with_a_certificate_and_no_secret(tls_server: Emulator, trusted: Pki,
                                                          tmp_path: Path) -> None:
    # A shared cache is accepted: its encryption key comes from the certificate's private key.
    tmp_path.chmod(0o700)
    url = tls_server.token_url("rfc6749")
    first, second = (make_auth("requests", TLS_CLIENT, token_url=url, cert=trusted.combined,
                               cache=f"file://{tmp_path}") for _ in range(2))
    with first, second:
        assert first.get_token().access_token == second.get_token().access_token == "tok-1"
    assert len(tls_server.received_at("token")) == 1
    assert [p for p in tmp_path.iterdir() if p.is_file()]  # the sealed entry


def test_kept_alive_tls_connections(trusted: Pki) -> None:
    # One TLS connection for the token request and the API requests; stop() closes it.
    with Emulator(guard_every_path=True, keep_alive=True,
                  ssl_context=server_context(trusted)) as server:
        _register(server, trusted)
        with make_auth("requests", TLS_CLIENT, token_url=server.token_url("rfc6749"),
                       cert=trusted.combined) as auth, requests.Session() as session:
            session.auth, session.verify, session.cert = auth, trusted.ca_file, auth.cert
            for _ in range(2):
                assert session.get(f"{server.url}/api", timeout=DEADLINE).status_code == 200
        assert len({r.peer for r in server.received_at("resource")}) == 1
