"""Misconfiguration is a ConfigurationError at construction, naming what is accepted."""

from __future__ import annotations

from typing import Any

import pytest

import oauth_cc_auth
from oauth_cc_auth import ConfigurationError, Provider
from oauth_cc_auth._config import build_config
from oauth_cc_auth.httpx import ClientCredentialsAuth as HttpxAuth
from oauth_cc_auth.httpx2 import ClientCredentialsAuth as Httpx2Auth
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth

ADAPTERS = [RequestsAuth, HttpxAuth, Httpx2Auth]
URL = "https://auth.example/token"


@pytest.fixture(params=ADAPTERS, ids=["requests", "httpx", "httpx2"])
def adapter(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/token",
        "http://127.9.9.9/token",
        "http://localhost/token",
        "http://[::1]:9000/token",
        "https://auth.example/token",
    ],
)
def test_accepted_token_urls(adapter: Any, url: str) -> None:
    assert adapter("id", "secret", token_url=url).token_url == url


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://auth.example/token", "not https"),
        ("http://10.0.0.1/token", "not https"),
        ("ftp://auth.example/token", "absolute https"),
        ("/token", "absolute https"),
        ("https://user:pw@auth.example/token", "user info"),
    ],
)
def test_rejected_token_urls(adapter: Any, url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        adapter("id", "secret", token_url=url)


def test_insecure_transport_is_explicit(adapter: Any) -> None:
    auth = adapter("id", "secret", token_url="http://auth.example/t", insecure_transport=True)
    assert auth.token_url == "http://auth.example/t"


def test_generic_provider_needs_token_url(adapter: Any) -> None:
    with pytest.raises(ConfigurationError, match="token_url"):
        adapter("id", "secret")


def test_unknown_provider_lists_installed(adapter: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown provider 'nope'.*rfc6749"):
        adapter("id", "secret", provider="nope")


def test_configuration_error_is_a_value_error() -> None:
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(ConfigurationError, oauth_cc_auth.AuthError)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"client_id": ""}, "client_id"),
        ({"client_id": None}, "client_id"),
        ({"client_id": True}, "client_id"),
        ({"client_secret": ""}, "client_secret"),
        ({"scope": 5}, "scope"),
        ({"scope": b"read"}, "scope"),
        ({"scope": ["read", 1]}, "scope"),
        ({"extra": ["audience"]}, "extra must be a mapping"),
        ({"extra": {"client_secret": "x"}}, "must not set client_secret"),
        ({"extra": {"grant_type": "password"}}, "must not set grant_type"),
        ({"leeway": -1}, "leeway"),
        ({"leeway": "60"}, "leeway"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"auth_method": "private_key_jwt"}, "needs private_key= or client_assertion="),
        ({"auth_method": "tls_client_auth"}, "needs cert="),
        ({"auth_method": "none"}, "accepted: client_secret_post, client_secret_basic, "
                                  "client_secret_jwt, private_key_jwt, tls_client_auth, "
                                  "self_signed_tls_client_auth"),
        ({"auth_method": "private_key_jwt", "provider": "fcc_finance", "token_url": None},
         "not accepted by provider 'fcc_finance'; accepted: client_secret_post$"),
        ({"client_secret": None}, "client_secret is required with auth_method "
                                  "'client_secret_post'"),
        ({"renew_on": (403,)}, "must include 401"),
        ({"renew_on": (401, 500)}, "4xx statuses"),
        ({"renew_on": "401"}, "renew_on must be HTTP statuses"),
        ({"renew_on": ()}, "4xx statuses"),
    ],
)
def test_bad_arguments(adapter: Any, kwargs: dict[str, Any], match: str) -> None:
    args = {"client_id": "id", "client_secret": "secret", "token_url": URL, **kwargs}
    with pytest.raises(ConfigurationError, match=match):
        adapter(args.pop("client_id"), args.pop("client_secret"), **args)


def test_seed_style_provider_validates_fields_and_environments(adapter: Any) -> None:
    acme = Provider(
        name="acme",
        environments={"production": "https://auth.acme.example/token",
                      "sandbox": "https://sandbox.acme.example/token"},
        default_environment="production",
        extra_fields=frozenset({"audience"}),
        required_fields=("audience", "scope"),
    )
    ok = adapter("id", "secret", provider=acme, scope="x", extra={"audience": "a"})
    assert ok.token_url == "https://auth.acme.example/token"
    sandbox = adapter("id", "s", provider=acme, environment="sandbox", scope="x",
                      extra={"audience": "a"})
    assert sandbox.token_url == "https://sandbox.acme.example/token"
    with pytest.raises(ConfigurationError, match="accepted: production, sandbox"):
        adapter("id", "s", provider=acme, environment="dev", scope="x", extra={"audience": "a"})
    with pytest.raises(ConfigurationError, match=r"extra field\(s\) color.*accepted: audience"):
        adapter("id", "s", provider=acme, scope="x", extra={"audience": "a", "color": "red"})
    with pytest.raises(ConfigurationError, match="requires audience"):
        adapter("id", "s", provider=acme, scope="x")
    with pytest.raises(ConfigurationError, match="requires scope"):
        adapter("id", "s", provider=acme, extra={"audience": "a"})


def test_provider_is_immutable() -> None:
    envs = {"production": "https://a.example/token"}
    provider = Provider(name="p", environments=envs)
    envs["production"] = "https://evil.example/token"
    assert provider.environments["production"] == "https://a.example/token"
    with pytest.raises(TypeError):
        provider.environments["x"] = "y"  # type: ignore[index]


def test_get_provider() -> None:
    assert oauth_cc_auth.get_provider("rfc6749").name == "rfc6749"
    assert "rfc6749" in oauth_cc_auth.available_providers()
    with pytest.raises(ConfigurationError, match=r"installed providers: .*rfc6749"):
        oauth_cc_auth.get_provider("missing")


def test_renew_on_from_the_environment(adapter: Any) -> None:
    env = {"OAUTH_CC_CLIENT_ID": "id", "OAUTH_CC_CLIENT_SECRET": "s",
           "OAUTH_CC_TOKEN_URL": URL, "OAUTH_CC_RENEW_ON": "401, 403"}
    assert adapter.from_env(env)._config.renew_on == {401, 403}
    assert adapter.from_config({"client_id": "i", "client_secret": "s", "token_url": URL,
                                "renew_on": [401, 403]})._config.renew_on == {401, 403}
    with pytest.raises(ConfigurationError, match="statuses such as 401,403"):
        adapter.from_env({**env, "OAUTH_CC_RENEW_ON": "401,forbidden"})


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown option.*: dpop_keys, privat_key"):
        build_config("c", "s", token_url="https://a.example/t", privat_key="k", dpop_keys="x")
