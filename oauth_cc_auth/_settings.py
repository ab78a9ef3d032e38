"""Configuration from a mapping (``from_config``) or the environment (``from_env``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from oauth_cc_auth.errors import ConfigurationError

__all__ = ["KEYS", "from_environ", "from_mapping"]

#: The keys ``from_config`` accepts (and ``from_env``, upper-cased behind the prefix), besides
#: ``extra_<field>``.
KEYS = (
    "assertion_audience",
    "assertion_lifetime",
    "auth_method",
    "backoff",
    "cache",
    "cert",
    "cert_file",
    "cert_key_file",
    "certificate",
    "certificate_file",
    "client_assertion_file",
    "client_id",
    "client_secret",
    "client_secret_file",
    "dpop",
    "dpop_key",
    "dpop_key_file",
    "environment",
    "extra",
    "insecure_transport",
    "issuer",
    "leeway",
    "max_response_bytes",
    "max_retries",
    "max_retry_after",
    "private_key",
    "private_key_file",
    "private_key_id",
    "provider",
    "refresh_ahead",
    "renew_on",
    "scope",
    "signing_alg",
    "timeout",
    "token_url",
)
_FLOATS = ("assertion_lifetime", "backoff", "leeway", "max_retry_after", "timeout")
#: ``<name>_file`` keys: a path given to the constructor's ``<name>``, which reads the file
#: (the client assertion's for every token request).
_FILES = {
    "private_key_file": "private_key",
    "certificate_file": "certificate",
    "client_assertion_file": "client_assertion",
    "dpop_key_file": "dpop_key",
}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _read_secret_file(path: object) -> str:
    reason: str | None = None
    try:
        text = Path(str(path)).read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    if reason is not None:
        # The path is not shown: a secret set there by mistake would be echoed.
        raise ConfigurationError(f"client_secret_file cannot be read: {reason}")
    # Docker and Kubernetes secrets, and `echo secret > file`, end in one newline.
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    return text


def _number(name: str, value: object, kind: type[float] | type[int]) -> object:
    """A number given as text (from the environment) as *kind*; other values as they are."""
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ConfigurationError(f"{name} must be {what}, not {value!r}") from None
    return value


def _bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigurationError(f"{name} must be true or false, not {value!r}")


def from_mapping(mapping: Mapping[str, Any]) -> tuple[Any, str | None, dict[str, Any]]:
    """``(client_id, client_secret, options)`` from a ``from_config`` mapping; the secret is
    ``None`` for private_key_jwt.

    Raises:
        ConfigurationError: a key is unknown or missing, or a value is malformed.
    """
    if not isinstance(mapping, Mapping):
        raise ConfigurationError(f"configuration must be a mapping, not {type(mapping).__name__}")
    extra: dict[str, Any] = {}
    options: dict[str, Any] = {}
    unknown = []
    for key, value in mapping.items():
        if not isinstance(key, str):
            unknown.append(repr(key))
        elif key.startswith("extra_") and len(key) > len("extra_"):
            extra[key[len("extra_") :]] = value
        elif key not in KEYS:
            unknown.append(key)
        elif value is not None and value != "":
            options[key] = value
    if unknown:
        raise ConfigurationError(
            f"unknown configuration key(s) {', '.join(sorted(unknown))}; accepted: "
            f"{', '.join(KEYS)}, extra_<field>"
        )
    if "extra" in options:
        given = options.pop("extra")
        if not isinstance(given, Mapping):
            raise ConfigurationError(f"extra must be a mapping, not {type(given).__name__}")
        extra = {**given, **extra}
    if extra:
        options["extra"] = extra
    client_id = options.pop("client_id", None)
    if client_id is None:
        raise ConfigurationError("client_id is required")
    secret = options.pop("client_secret", None)
    secret_file = options.pop("client_secret_file", None)
    if secret is not None and secret_file is not None:
        raise ConfigurationError("give client_secret or client_secret_file, not both")
    for file_key, name in _FILES.items():
        if file_key in options:
            if name in options:
                raise ConfigurationError(f"give {name} or {file_key}, not both")
            options[name] = Path(str(options.pop(file_key)))
    _cert(options)
    if secret_file is not None:
        secret = _read_secret_file(secret_file)
    keyed = "private_key" in options or "client_assertion" in options or "cert" in options
    if secret is None and not keyed and options.get("auth_method") != "private_key_jwt":
        raise ConfigurationError(
            "client_secret or client_secret_file is required (or, for private_key_jwt, "
            "private_key_file or client_assertion_file; for mutual TLS, cert_file)"
        )
    for name in _FLOATS:
        if name in options:
            options[name] = _number(name, options[name], float)
    for name in ("max_retries", "max_response_bytes"):
        if name in options:
            options[name] = _number(name, options[name], int)
    for name in ("insecure_transport", "dpop", "refresh_ahead"):
        if name in options:
            options[name] = _bool(name, options[name])
    if isinstance(options.get("renew_on"), str):  # OAUTH_CC_RENEW_ON=401,403
        text = options["renew_on"].replace(",", " ").split()
        if not all(part.isdigit() for part in text):
            raise ConfigurationError(f"renew_on must be statuses such as 401,403, not "
                                     f"{options['renew_on']!r}")
        options["renew_on"] = tuple(int(part) for part in text)
    return client_id, secret, options


def _cert(options: dict[str, Any]) -> None:
    """``cert_file`` (certificate and key, or the certificate with ``cert_key_file``) or
    ``cert`` (a path, or a pair as a list) as the constructor's ``cert``."""
    cert_file, key_file = options.pop("cert_file", None), options.pop("cert_key_file", None)
    if cert_file is not None and "cert" in options:
        raise ConfigurationError("give cert or cert_file, not both")
    if key_file is not None and cert_file is None:
        raise ConfigurationError("cert_key_file needs cert_file (the certificate)")
    if cert_file is not None:
        options["cert"] = str(cert_file) if key_file is None else (str(cert_file), str(key_file))
    elif isinstance(options.get("cert"), list):  # a pair from JSON, TOML or YAML
        options["cert"] = tuple(options["cert"])


def from_environ(
    environ: Mapping[str, str] | None = None, prefix: str = "OAUTH_CC_"
) -> tuple[Any, str | None, dict[str, Any]]:
    """``(client_id, client_secret, options)`` from ``<prefix><KEY>`` environment variables.

    ``OAUTH_CC_EXTRA_EMAIL_ADDRESS`` becomes the extra field ``email_address``.
    """
    env = os.environ if environ is None else environ
    mapping = {
        name[len(prefix) :].lower(): value for name, value in env.items() if name.startswith(prefix)
    }
    if "extra" in mapping:
        raise ConfigurationError(f"set extra fields as {prefix}EXTRA_<FIELD>, not {prefix}EXTRA")
    try:
        return from_mapping(mapping)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} (from {prefix}* environment variables)") from None
