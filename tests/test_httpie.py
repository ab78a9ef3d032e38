"""The HTTPie plugin, through the real `http` command against the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from oauth_cc_auth.testing import EmulatedClient, Emulator

# HTTPie of this interpreter (which loads this package's plugin), never an `http` on PATH.
HTTP = (sys.executable, "-m", "httpie")


def http(*args: str, env: dict[str, str]) -> Any:
    return subprocess.run(  # noqa: S603
        [*HTTP, "--ignore-stdin", "--print=b", "-A", "oauth-cc", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def environment(emulator: Emulator, provider: str, home: Path) -> dict[str, str]:
    client = emulator.client(provider)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OAUTH_CC_")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / "cache"),
               HTTPIE_CONFIG_DIR=str(home / "httpie"),
               OAUTH_CC_PROVIDER=provider, OAUTH_CC_TOKEN_URL=emulator.token_url(provider))
    if client.scope:
        env["OAUTH_CC_SCOPE"] = client.scope
    for field, value in client.extra.items():
        env[f"OAUTH_CC_EXTRA_{field.upper()}"] = value
    return env


# Five `http` commands each, 3 to 5 s. The default run has the plugin through `http` with the
# tests below (a token kept between invocations, encrypted on disk, among them).
@pytest.mark.slow
@pytest.mark.parametrize("provider", ["fcc_finance", "fincalc", "figure"])
def test_http_command_against_each_provider(provider: str, tmp_path: Path) -> None:
    with Emulator() as emulator:
        client = emulator.client(provider)
        env = environment(emulator, provider, tmp_path)
        credentials = f"{client.client_id}:{client.client_secret}"
        url = emulator.resource_url(provider)
        for _ in range(3):
            result = http("-a", credentials, url, env=env)
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["provider"] == provider
        assert emulator.token_requests[provider] == 1  # kept between invocations
        # The token is on disk encrypted, never in plaintext.
        [entry] = (tmp_path / "cache" / "oauth-cc-auth").glob("*.token")
        assert b"access_token" not in entry.read_bytes()

        emulator.revoke_all()
        result = http("-a", credentials, url, env=env)
        assert result.returncode == 0, result.stderr
        assert emulator.token_requests[provider] == 2

        wrong = http("-a", f"{client.client_id}:wrong-{client.client_secret}", url, env=env)
        assert wrong.returncode != 0
        assert "TokenRequestError" in wrong.stderr
        assert "Traceback" not in wrong.stderr
        assert client.client_secret not in wrong.stderr + wrong.stdout


def test_credentials_from_the_environment(tmp_path: Path) -> None:
    with Emulator() as emulator:
        client = emulator.client("figure")
        env = environment(emulator, "figure", tmp_path)
        env.update(OAUTH_CC_CLIENT_ID=str(client.client_id),
                   OAUTH_CC_CLIENT_SECRET=client.client_secret)
        result = http(emulator.resource_url("figure"), env=env)
        assert result.returncode == 0, result.stderr


def test_misconfiguration_is_one_line(tmp_path: Path) -> None:
    with Emulator() as emulator:
        env = environment(emulator, "fincalc", tmp_path)
        del env["OAUTH_CC_SCOPE"]
        result = http("-a", "12345:a-secret-value", emulator.resource_url("fincalc"), env=env)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "http: error: oauth-cc: provider 'fincalc' requires scope "
        "(required: scope, email_address)"
    )


def test_private_key_jwt_from_the_environment(tmp_path: Path) -> None:
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048)
    (tmp_path / "key.pem").write_bytes(key.as_pem(private=True))
    with Emulator() as emulator:
        emulator.register_client(EmulatedClient(
            "rfc6749", "httpie-pkjwt", jwks={"keys": [key.as_dict(private=False)]}
        ))
        env = environment(emulator, "rfc6749", tmp_path)
        env["OAUTH_CC_PRIVATE_KEY_FILE"] = str(tmp_path / "key.pem")
        url = emulator.resource_url("rfc6749")
        for _ in range(2):
            result = http("-a", "httpie-pkjwt:", url, env=env)
            assert result.returncode == 0, result.stderr
        # Kept between invocations, sealed with a key derived from the private key.
        assert emulator.token_requests["rfc6749"] == 1
        [entry] = (tmp_path / "cache" / "oauth-cc-auth").glob("*.token")
        assert b"access_token" not in entry.read_bytes()


def test_one_request_per_process_refreshes_a_due_token_before_it(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    from oauth_cc_auth.httpie import OAuthClientCredentialsPlugin

    for name in [n for n in os.environ if n.startswith("OAUTH_CC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OAUTH_CC_TOKEN_URL", "https://auth.example/token")
    monkeypatch.setenv("OAUTH_CC_CACHE", "memory:")
    auth = OAuthClientCredentialsPlugin().get_auth("id", "secret")
    assert auth._config.refresh_ahead is False  # no background thread the exit would cut
    monkeypatch.setenv("OAUTH_CC_REFRESH_AHEAD", "true")
    assert OAuthClientCredentialsPlugin().get_auth("id", "secret")._config.refresh_ahead
