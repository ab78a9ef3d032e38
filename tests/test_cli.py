"""The oauth-cc-auth command, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import requests

from oauth_cc_auth import cli
from oauth_cc_auth.testing import EmulatedClient, Emulator
from oauth_cc_auth.testing._emulator import PRESET_SITES, SITES

# The command of this package, run by this interpreter, never one found on PATH.
COMMAND = (sys.executable, "-m", "oauth_cc_auth")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OAUTH_CC_")}
    return subprocess.run(  # noqa: S603
        [*COMMAND, *args], env={**base, **(env or {})}, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=timeout, check=False,
    )


@pytest.mark.parametrize("subcommand", ["providers", "token", "discover", "emulator", "demo"])
def test_every_subcommand_has_help(subcommand: str) -> None:
    result = run(subcommand, "--help")
    assert result.returncode == 0
    assert f"usage: oauth-cc-auth {subcommand}" in result.stdout


def test_providers_lists_the_four() -> None:
    result = run("providers", "--json")
    assert result.returncode == 0
    listing = {p["name"]: p for p in json.loads(result.stdout)}
    assert {"rfc6749", "fcc_finance", "fincalc", "figure"} <= set(listing)
    assert listing["figure"]["environments"] == {
        "test": "https://api.pay.test.figure.com/oauth2/token"
    }


def test_providers_lists_the_presets_with_what_they_require() -> None:
    result = run("providers", "--json")
    listing = {p["name"]: p for p in json.loads(result.stdout)}
    assert listing["auth0"]["requires"] == ["token_url", "audience"]
    assert listing["auth0"]["field_help"]["audience"] == (
        "the API Identifier (Auth0 Dashboard → Applications → APIs → your API → Settings → "
        "Identifier)"
    )
    assert listing["entra"]["requires"] == ["token_url", "scope"]
    assert listing["cognito"]["auth_methods"] == ["client_secret_basic", "client_secret_post"]
    assert listing["fincalc"]["requires"] == ["scope", "email_address"]
    assert listing["fcc_finance"]["requires"] == []
    for name in ("entra", "auth0", "okta", "keycloak", "cognito", "salesforce", "pingone",
                 "zitadel"):
        assert listing[name]["environments"] == {}
        assert listing[name]["requires"][0] == "token_url"
    text = run("providers").stdout
    auth0 = text[text.index("auth0: "):text.index("cognito: ")]
    assert auth0 == (
        "auth0: Auth0 (token_url https://{domain}/oauth/token; audience required)\n"
        "    requires: token_url, audience\n"
        "    token_url: https://{your domain}/oauth/token, the Domain (Auth0 Dashboard → "
        "Applications → Applications → your application → Settings → Domain)\n"
        "    client_id: the Client ID (Auth0 Dashboard → Applications → Applications → your "
        "application → Settings)\n"
        "    client_secret: the Client Secret (Auth0 Dashboard → Applications → Applications → "
        "your application → Settings)\n"
        "    audience: the API Identifier (Auth0 Dashboard → Applications → APIs → your API → "
        "Settings → Identifier)\n"
        "    auth methods: client_secret_post (default), client_secret_basic, private_key_jwt, "
        "tls_client_auth, self_signed_tls_client_auth\n"
    )
    assert "rfc6749: Generic OAuth 2.0 client credentials (RFC 6749 §4.4); needs token_url\n" \
        "    (no documented token URL: pass --token-url)\n    requires: token_url\n" in text


@pytest.mark.parametrize("provider", ["fcc_finance", "fincalc", "figure"])
def test_token_against_the_emulator(provider: str) -> None:
    with Emulator() as emulator:
        client = emulator.client(provider)
        env = {"OAUTH_CC_CLIENT_SECRET": client.client_secret}
        args = ["token", "--provider", provider, "--token-url", emulator.token_url(provider),
                "--client-id", str(client.client_id)]
        if client.scope:
            args += ["--scope", client.scope]
        for field, value in client.extra.items():
            args += ["--extra", f"{field}={value}"]
        result = run(*args, env=env)
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        response = requests.get(emulator.resource_url(provider), timeout=10,
                                headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert client.client_secret not in result.stdout + result.stderr

        whole = run(*args, "--json", env=env)
        assert json.loads(whole.stdout)["token_type"].lower() == "bearer"


def test_token_from_the_environment_and_a_secret_file(tmp_path: Any) -> None:
    with Emulator() as emulator:
        client = emulator.client("rfc6749")
        secret_file = tmp_path / "secret"
        secret_file.write_text(client.client_secret + "\n")
        result = run("token", env={
            "OAUTH_CC_TOKEN_URL": emulator.token_url("rfc6749"),
            "OAUTH_CC_CLIENT_ID": str(client.client_id),
            "OAUTH_CC_CLIENT_SECRET_FILE": str(secret_file),
        })
        assert result.returncode == 0, result.stderr
        assert emulator.token_requests["rfc6749"] == 1


def test_token_with_private_key_jwt_and_no_secret(tmp_path: Any) -> None:
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256")
    (tmp_path / "key.pem").write_bytes(key.as_pem(private=True))
    with Emulator() as emulator:
        emulator.register_client(EmulatedClient(
            "rfc6749", "cli-pkjwt", jwks={"keys": [{**key.as_dict(private=False), "kid": "k"}]}
        ))
        args = ["token", "--token-url", emulator.token_url("rfc6749"), "--client-id",
                "cli-pkjwt", "--private-key-file", str(tmp_path / "key.pem"),
                "--private-key-id", "k"]
        for _ in range(2):  # a new assertion each run: the emulator accepts each only once
            result = run(*args)  # no secret, no terminal: no prompt either
            assert result.returncode == 0, result.stderr
        assert emulator.token_requests["rfc6749"] == 2
        bad = run(*args[:-2], "--signing-alg", "RS256")
        assert bad.returncode == 2
        assert "signing_alg 'RS256' cannot be used" in bad.stderr


def test_wrong_secret_is_one_clear_line() -> None:
    with Emulator() as emulator:
        result = run("token", "--provider", "figure", "--token-url",
                     emulator.token_url("figure"), "--client-id", "figure-client",
                     env={"OAUTH_CC_CLIENT_SECRET": "wrong-secret-value"})
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("oauth-cc-auth: TokenRequestError: ")
    assert "invalid_client" in result.stderr
    assert "wrong-secret-value" not in result.stderr
    assert "Traceback" not in result.stderr


def test_no_secret_and_no_terminal_is_a_configuration_error() -> None:
    result = run("token", "--token-url", "https://auth.example/token", "--client-id", "x")
    assert result.returncode == 2
    assert "OAUTH_CC_CLIENT_SECRET" in result.stderr
    assert "never taken from the command line" in result.stderr


# The demo (``oauth-cc-auth demo``, about a minute) is tested by README.rst's example, which
# runs it in the slow run and checks its header and its verdict: "40 provider/client rows: all
# behaved" (the five logins by the eight client flavours, every row ok).


@pytest.mark.parametrize(
    ("missing", "adapter"),
    [((), "requests"), (("requests",), "httpx2"), (("requests", "httpx2"), "httpx")],
)
def test_token_command_prefers_requests_then_httpx2_then_httpx(
    monkeypatch: pytest.MonkeyPatch, missing: tuple[str, ...], adapter: str
) -> None:
    import importlib.util

    from oauth_cc_auth import cli

    find_spec = importlib.util.find_spec

    def installed(name: str, *args: Any) -> Any:
        return None if name in missing else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", installed)
    assert cli._auth_class().__module__ == f"oauth_cc_auth.{adapter}"


def test_emulator_command_serves_until_interrupted() -> None:
    import signal
    import time

    with subprocess.Popen(  # noqa: S603
        [*COMMAND, "emulator"], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("emulator serving on http://127.0.0.1:")
            base = first.split()[3]
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert requests.get(base + "/profiles", timeout=5).status_code == 401
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            # SIGTERM: a SIGINT may be ignored when the tests run in the background.
            process.send_signal(signal.SIGTERM)
            try:
                assert process.wait(timeout=10) == 0
            finally:
                process.kill()


def test_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "oauth_cc_auth", "providers"], capture_output=True, text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "fincalc" in result.stdout


def test_token_command_refreshes_a_due_token_before_printing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The process ends after printing: a due token is refreshed now, not in the background.
    from oauth_cc_auth import MemoryCache, cli
    from oauth_cc_auth.requests import ClientCredentialsAuth
    from oauth_cc_auth.testing import FakeClock

    clock, cache = FakeClock(), MemoryCache()  # as a file cache kept between two runs

    class Kept(ClientCredentialsAuth):
        def __init__(self, *args: Any, **options: Any) -> None:
            super().__init__(*args, clock=clock, cache=cache, **options)

    monkeypatch.setattr(cli, "_auth_class", lambda: Kept)
    with Emulator() as emulator:
        client = emulator.client("rfc6749")
        monkeypatch.setenv("OAUTH_CC_CLIENT_SECRET", client.client_secret)
        args = ["token", "--token-url", emulator.token_url("rfc6749"),
                "--client-id", str(client.client_id)]
        assert cli.main(args) == 0
        first = capsys.readouterr().out
        assert cli.main(args) == 0
        assert capsys.readouterr().out == first  # fresh: the cached one
        clock.advance(3550)  # due, 50 s before expiry
        assert cli.main(args) == 0
        assert capsys.readouterr().out not in ("", first)
        assert emulator.token_requests["rfc6749"] == 2


@pytest.mark.parametrize("provider", [*SITES, *PRESET_SITES])
def test_token_emulated_is_a_token_of_the_emulator_started_for_the_command(
    provider: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[Emulator] = []
    real_enter = Emulator.__enter__

    def enter(self: Emulator) -> Emulator:
        started.append(self)
        return real_enter(self)

    monkeypatch.setattr(Emulator, "__enter__", enter)
    # A real configuration in the environment is not read: its secret never goes there.
    monkeypatch.setenv("OAUTH_CC_PROVIDER", "figure")
    monkeypatch.setenv("OAUTH_CC_CLIENT_SECRET", "a-real-secret")
    assert cli.main(["token", "--emulated", *(["--provider", provider]
                                                if provider != "rfc6749" else [])]) == 0
    token = capsys.readouterr().out.strip()
    [emulator] = started
    assert emulator.token_requests == {provider: 1}
    assert b"a-real-secret" not in b"".join(r.body for r in emulator.received)
    site = {**SITES, **PRESET_SITES}[provider]
    answer = emulator.handle("GET", f"http://127.0.0.1{site.resource_path}",
                             {"Authorization": f"Bearer {token}"})
    assert answer.status == 200


def test_token_emulated_from_the_command_line_and_what_it_refuses() -> None:
    result = run("token", "--emulated", "--provider", "fincalc", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["expires_in"] == 86400
    refused = run("token", "--emulated", "--token-url", "https://auth.example.com/token",
                  "--client-id", "x")
    assert refused.returncode == 2
    assert refused.stderr == ("oauth-cc-auth: configuration error: --emulated takes the server "
                              "and the client from the emulator: leave out --token-url, "
                              "--client-id\n")
    unknown = run("token", "--emulated", "--provider", "acme")
    assert unknown.returncode == 2
    assert "unknown provider 'acme'" in unknown.stderr
