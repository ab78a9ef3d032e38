"""The HTTPie auth plugin: ``http -A oauth-cc -a CLIENT_ID:SECRET URL``.

Registered under the ``httpie.plugins.auth.v1`` entry point. The provider and its options come
from the ``OAUTH_CC_*`` environment (as ``ClientCredentialsAuth.from_env``); so do the client id
and secret when ``-a`` is not given. Tokens are kept between invocations in the encrypted file
cache (``OAUTH_CC_CACHE`` chooses another), so a shell session makes one token request per
token lifetime, not one per command.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from httpie.plugins import AuthPlugin

from oauth_cc_auth._settings import from_mapping
from oauth_cc_auth.errors import ConfigurationError

__all__ = ["OAuthClientCredentialsPlugin"]

PREFIX = "OAUTH_CC_"


class OAuthClientCredentialsPlugin(AuthPlugin):  # type: ignore[misc]  # httpie is untyped
    """OAuth 2.0 client credentials for HTTPie."""

    name = "OAuth 2.0 client credentials"
    auth_type = "oauth-cc"
    description = (
        "OAuth 2.0 client credentials (oauth-cc-auth): -a CLIENT_ID:SECRET or OAUTH_CC_* "
        "variables; OAUTH_CC_PROVIDER, _ENVIRONMENT, _TOKEN_URL, _SCOPE, _EXTRA_<FIELD>, "
        "_AUTH_METHOD, _PRIVATE_KEY_FILE, _CLIENT_ASSERTION_FILE"
    )
    auth_require = False  # the credentials may come from the environment
    auth_parse = True
    prompt_password = True

    def get_auth(self, username: str | None = None, password: str | None = None) -> Any:
        from oauth_cc_auth.requests import ClientCredentialsAuth

        settings: dict[str, Any] = {
            name[len(PREFIX):].lower(): value
            for name, value in os.environ.items()
            if name.startswith(PREFIX)
        }
        if username is not None:
            settings["client_id"] = username
            settings.pop("client_secret_file", None)
            # `-a CLIENT_ID:` (no password) with a private key or assertion file: no secret.
            settings["client_secret"] = password or None
        # Tokens kept between invocations, encrypted with the secret or private key; an
        # external assertion has no such material, so its tokens stay in the process.
        external = "client_assertion_file" in settings
        settings.setdefault("cache", "memory:" if external else "file:")
        try:
            client_id, secret, options = from_mapping(settings)
            # One request per process: a token due for refresh is refreshed before it, not
            # in a background thread that the exit would cut short.
            options.setdefault("refresh_ahead", False)
            return ClientCredentialsAuth(client_id, secret, **options)
        except ConfigurationError as exc:
            # As HTTPie reports its own argument errors: one line, a non-zero exit status.
            sys.stderr.write(f"http: error: oauth-cc: {exc}\n")
            raise SystemExit(2) from None
