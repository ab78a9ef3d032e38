"""The seed providers exactly as their documents describe them, through every adapter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

import oauth_cc_auth
from oauth_cc_auth import ConfigurationError, Provider
from oauth_cc_auth.requests import ClientCredentialsAuth as RequestsAuth
from oauth_cc_auth.testing import EmulatedClient, Reply
from tests.conftest import Harness, build_auth

FORM = "application/x-www-form-urlencoded"
FCC_PROD = "https://api.fccfinance.com/servicing/oauth/token"
FCC_DEV = "https://api.fccfinance.dev/servicing/oauth/token"
FINCALC = "https://api.fincalc.co.uk/api/oauth/token"
FIGURE_TEST = "https://api.pay.test.figure.com/oauth2/token"
FINCALC_SECRET = "bVc8ztJq3N92uUM4mRSoDkE6Wx5fnGhXlPaPyTg7"
#: The protected resource of each seed provider: the emulator accepts a provider's tokens at
#: its own resource only (it routes by path).
RESOURCE = {
    "fcc_finance": "https://api.fccfinance.com/servicing/loans",
    "fincalc": "https://api.fincalc.co.uk/api/calculations",
    "figure": "https://api.pay.test.figure.com/profiles",
}


def seed(make: Callable[..., Any], provider: str, **options: Any) -> Any:
    """A *provider* auth object from *make* (a harness's ``auth``, or :func:`configure` for a
    test that sends nothing), at the provider's own token URL unless *options* name one."""
    options.setdefault("token_url", None)
    return make(provider=provider, **options)


def configure(**options: Any) -> Any:
    """An auth object of one flavour: configuration behaves the same in all of them."""
    return build_auth(RequestsAuth, **options)


def call(harness: Harness, auth: Any) -> Any:
    """A request to the protected resource of *auth*'s provider."""
    return harness.get(auth, RESOURCE[auth.provider.name])


def only_token_request(harness: Harness) -> Any:
    [request] = harness.server.received_at("token")
    assert request.method == "POST"
    assert "authorization" not in request.headers  # the secret is only in the body
    assert request.headers["accept"] == "application/json"
    return request


class TestFccFinance:
    @pytest.mark.parametrize(
        ("environment", "url"),
        [(None, FCC_PROD), ("production", FCC_PROD), ("development", FCC_DEV)],
    )
    def test_token_request(self, harness: Harness, environment: str | None, url: str) -> None:
        harness.server.answer_next(
            Reply(json={"access_token": "many characters", "expires_in": 86400,
                        "token_type": "bearer"})
        )
        auth = seed(harness.auth, "fcc_finance", client_id="[your id]", environment=environment)
        assert call(harness, auth).status_code == 200
        request = only_token_request(harness)
        assert request.url == url
        assert request.headers["content-type"] == FORM
        assert request.body == (
            b"grant_type=client_credentials&client_id=%5Byour+id%5D"
            b"&client_secret=s3cr3t-VALUE%2B%2F%3D"
        )
        [api_request] = harness.server.received_at("resource")
        assert api_request.headers["authorization"] == "Bearer many characters"
        assert auth.token.expires_in == 86400

    def test_accepts_no_scope_or_extra_fields(self) -> None:
        with pytest.raises(ConfigurationError, match="takes no scope"):
            seed(configure, "fcc_finance", scope="x")
        with pytest.raises(ConfigurationError, match="accepted: none"):
            seed(configure, "fcc_finance", extra={"audience": "x"})
        with pytest.raises(ConfigurationError, match="accepted: development, production"):
            seed(configure, "fcc_finance", environment="staging")


class TestFinCalc:
    def envelope(self, token: str = "eyJ.x.y") -> Reply:
        return Reply(json={"success": True, "data": {"token_type": "Bearer", "expires_in": 86400,
                                                     "access_token": token}})

    @pytest.mark.parametrize("client_id", [12345, "12345"])
    def test_token_request_is_json_with_values_as_given(
        self, harness: Harness, client_id: Any
    ) -> None:
        harness.server.answer_next(self.envelope())
        auth = seed(harness.auth, "fincalc", client_id=client_id, client_secret=FINCALC_SECRET,
                    scope="api_scope", extra={"email_address": "hello@example.com"})
        call(harness, auth)
        request = only_token_request(harness)
        assert request.url == FINCALC
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.body)
        assert list(body.items()) == [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),  # 12345 stays a JSON number, "12345" a string
            ("client_secret", FINCALC_SECRET),
            ("scope", "api_scope"),
            ("email_address", "hello@example.com"),
        ]
        [api_request] = harness.server.received_at("resource")
        assert api_request.headers["authorization"] == "Bearer eyJ.x.y"

    def test_scope_sequence_is_space_joined_in_json(self, harness: Harness) -> None:
        harness.server.answer_next(self.envelope())
        call(harness, seed(harness.auth, "fincalc", scope=["a", "b"],
                         extra={"email_address": "me@example.com"}))
        assert json.loads(only_token_request(harness).body)["scope"] == "a b"

    def test_failure_envelope_is_token_request_error(self, harness: Harness) -> None:
        description = (
            "The request is missing a required parameter, includes an invalid parameter "
            "value, includes a parameter more than once, or is otherwise malformed."
        )
        harness.server.answer_next(
            Reply(400, json={"success": False, "message": {"description": description}})
        )
        auth = seed(harness.auth, "fincalc", scope="s", extra={"email_address": "me@example.com"})
        with pytest.raises(oauth_cc_auth.TokenRequestError) as info:
            call(harness, auth)
        assert (info.value.status_code, info.value.error, info.value.description) == (
            400, None, description
        )

    @pytest.mark.parametrize(
        "payload",
        [
            {"success": False, "message": {"description": "account locked"}},
            {"success": False},
            {"data": {"access_token": "t"}},
            {"success": True},
            {"access_token": "bare"},
        ],
    )
    def test_unusable_2xx_envelopes(self, harness: Harness, payload: dict[str, Any]) -> None:
        harness.server.answer_next(Reply(json=payload))
        auth = seed(harness.auth, "fincalc", scope="s", extra={"email_address": "me@example.com"})
        with pytest.raises(oauth_cc_auth.TokenResponseError) as info:
            call(harness, auth)
        if payload.get("message"):
            assert info.value.description == "account locked"

    def test_token_type_is_case_insensitive_and_lifetime_defaults_to_a_day(
        self, harness: Harness
    ) -> None:
        harness.server.answer_next(
            Reply(json={"success": True, "data": {"token_type": "BEARER", "access_token": "t"}})
        )
        auth = seed(harness.auth, "fincalc", scope="s", extra={"email_address": "me@example.com"})
        call(harness, auth)
        assert auth.token.expires_in == 86400

    def test_required_fields(self) -> None:
        with pytest.raises(ConfigurationError, match="requires email_address"):
            seed(configure, "fincalc", scope="s")
        with pytest.raises(ConfigurationError, match="requires scope"):
            seed(configure, "fincalc", extra={"email_address": "me@example.com"})
        with pytest.raises(ConfigurationError, match="accepted: email_address"):
            seed(configure, "fincalc", scope="s", extra={"email_address": "e", "user": "u"})


class TestFigure:
    def test_token_request_and_bare_token(self, harness: Harness) -> None:
        harness.server.answer_next(
            Reply(json={"access_token": "FOEtUHwg0das9PhsasVmgMGbZn7nWSgK"})
        )
        # The first answer is the document's example; the refresh is the emulator's own.
        harness.server.register_client(EmulatedClient("figure", "abc", "xyz"))
        auth = seed(harness.auth, "figure", client_id="abc", client_secret="xyz")
        call(harness, auth)
        request = only_token_request(harness)
        assert request.url == FIGURE_TEST
        assert request.headers["content-type"] == FORM
        assert request.body == b"grant_type=client_credentials&client_id=abc&client_secret=xyz"
        assert (
            harness.server.received_at("resource")[0].headers["authorization"]
            == "Bearer FOEtUHwg0das9PhsasVmgMGbZn7nWSgK"
        )
        assert auth.token.expires_in == 3600  # documented: one hour
        harness.clock.advance(3539)
        call(harness, auth)
        assert len(harness.server.received_at("token")) == 1
        harness.clock.advance(2)
        call(harness, auth)
        assert len(harness.server.received_at("token")) == 2

    def test_production_needs_token_url(self) -> None:
        with pytest.raises(ConfigurationError, match="accepted: test, or pass token_url"):
            seed(configure, "figure", environment="production")
        auth = seed(configure, "figure", token_url="https://api.pay.figure.example/oauth2/token")
        assert auth.token_url == "https://api.pay.figure.example/oauth2/token"


class TestConfiguration:
    def test_from_env(self, harness: Harness, tmp_path: Path) -> None:
        secret_file = tmp_path / "secret"
        secret_file.write_text(FINCALC_SECRET + "\n")
        environ = {
            "OAUTH_CC_PROVIDER": "fincalc",
            "OAUTH_CC_CLIENT_ID": "12345",
            "OAUTH_CC_CLIENT_SECRET_FILE": str(secret_file),
            "OAUTH_CC_SCOPE": "api_scope",
            "OAUTH_CC_EXTRA_EMAIL_ADDRESS": "hello@example.com",
            "OAUTH_CC_LEEWAY": "30",
            "UNRELATED": "ignored",
        }
        harness.server.answer_next(TestFinCalc().envelope())
        auth = harness.auth_class.from_env(environ, cache=harness.cache, clock=harness.clock)
        assert auth.provider.name == "fincalc"
        call(harness, auth)
        body = json.loads(only_token_request(harness).body)
        assert body["client_secret"] == FINCALC_SECRET  # one trailing newline stripped
        assert body["client_id"] == "12345"
        assert body["email_address"] == "hello@example.com"
        assert auth.token.refresh_at == auth.token.expires_at - 30

    def test_from_env_reads_os_environ_with_a_prefix(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("FIG_PROVIDER", "figure")
        monkeypatch.setenv("FIG_CLIENT_ID", "abc")
        monkeypatch.setenv("FIG_CLIENT_SECRET", "xyz")
        auth = RequestsAuth.from_env(prefix="FIG_")
        assert auth.token_url == FIGURE_TEST

    def test_from_config(self, harness: Harness) -> None:
        harness.server.answer_next(TestFinCalc().envelope())
        auth = harness.auth_class.from_config(
            {"provider": "fincalc", "client_id": 12345, "client_secret": "sec",
             "scope": ["a", "b"], "extra": {"email_address": "x@example.com"}},
            cache=harness.cache,
        )
        call(harness, auth)
        body = json.loads(only_token_request(harness).body)
        assert (body["client_id"], body["scope"], body["email_address"]) == (
            12345, "a b", "x@example.com"
        )
        also = harness.auth_class.from_config(
            {"provider": "fincalc", "client_id": 1, "client_secret": "s", "scope": "s",
             "extra_email_address": "y@example.com"}
        )
        assert also._config.client.extra == {"email_address": "y@example.com"}

    @pytest.mark.parametrize(
        ("mapping", "match"),
        [
            ({"client_secret": "s"}, "client_id is required"),
            ({"client_id": "i"}, "client_secret or client_secret_file is required"),
            ({"client_id": "i", "client_secret": "s", "client_secret_file": "/x"}, "not both"),
            ({"client_id": "i", "client_secret_file": "/nonexistent/secret"}, "cannot be read"),
            ({"client_id": "i", "client_secret": "s", "colour": "red"},
             r"unknown configuration key\(s\) colour; accepted: .*token_url"),
            ({"client_id": "i", "client_secret": "s", "leeway": "soon"}, "leeway"),
            ({"client_id": "i", "client_secret": "s", "insecure_transport": "maybe"},
             "insecure_transport"),
            ({"client_id": "i", "client_secret": "s", "provider": "nope"}, "unknown provider"),
        ],
    )
    def test_from_config_errors(self, mapping: dict[str, Any], match: str) -> None:
        mapping.setdefault("token_url", "https://auth.example/oauth/token")
        with pytest.raises(ConfigurationError, match=match):
            RequestsAuth.from_config(mapping)

    def test_from_env_errors_name_the_variables(self) -> None:
        with pytest.raises(ConfigurationError, match=r"client_id is required.*OAUTH_CC_\*"):
            RequestsAuth.from_env({"OAUTH_CC_CLIENT_SECRET": "s"})
        with pytest.raises(ConfigurationError, match="unknown configuration key"):
            RequestsAuth.from_env(
                {"OAUTH_CC_CLIENT_ID": "i", "OAUTH_CC_CLIENT_SECRET": "s", "OAUTH_CC_TYPO": "x"}
            )


class TestPluggable:
    def test_builtins_are_registered_as_entry_points(self) -> None:
        found = {ep.name: ep for ep in entry_points(group="oauth_cc_auth.providers")}
        assert {"rfc6749", "fcc_finance", "fincalc", "figure"} <= set(found)
        for name in ("rfc6749", "fcc_finance", "fincalc", "figure"):
            provider = found[name].load()
            assert isinstance(provider, Provider)
            assert provider.name == name
            assert oauth_cc_auth.get_provider(name) is provider

    def test_provider_from_another_distribution(self, tmp_path: Path) -> None:
        package = tmp_path / "acme_cc"
        package.mkdir()
        (package / "__init__.py").write_text(textwrap.dedent("""
            from oauth_cc_auth import Provider
            provider = Provider(
                name="acme",
                environments={"live": "https://auth.acme.example/oauth/token"},
                default_environment="live",
                extra_fields=frozenset({"audience"}),
            )
        """))
        dist_info = tmp_path / "acme_cc-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-cc\nVersion: 1.0\n")
        (dist_info / "entry_points.txt").write_text(
            "[oauth_cc_auth.providers]\nacme = acme_cc:provider\n"
        )
        code = textwrap.dedent("""
            import oauth_cc_auth
            from oauth_cc_auth.requests import ClientCredentialsAuth
            assert "acme" in oauth_cc_auth.available_providers()
            auth = ClientCredentialsAuth("id", "secret", provider="acme",
                                         extra={"audience": "api"})
            print(auth.token_url)
        """)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "https://auth.acme.example/oauth/token"

    def test_entry_point_that_is_not_a_provider(self, tmp_path: Path) -> None:
        (tmp_path / "bad_cc.py").write_text("provider = 'not a provider'\n")
        dist_info = tmp_path / "bad_cc-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-cc\nVersion: 1.0\n")
        (dist_info / "entry_points.txt").write_text(
            "[oauth_cc_auth.providers]\nbad = bad_cc:provider\n"
        )
        code = (
            "import oauth_cc_auth\n"
            "try:\n    oauth_cc_auth.get_provider('bad')\n"
            "except oauth_cc_auth.ConfigurationError as e:\n    print(e)\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert "is not a Provider" in result.stdout
