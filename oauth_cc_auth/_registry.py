"""Providers found through the ``oauth_cc_auth.providers`` entry point group.

Entry points are listed on first use, once per process, and each is loaded when first asked
for, so that ``import oauth_cc_auth`` reads no distribution metadata.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from oauth_cc_auth.errors import ConfigurationError
from oauth_cc_auth.providers._base import Provider

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["available_providers", "get_provider"]

GROUP = "oauth_cc_auth.providers"

#: The package's own providers: the seed providers and the identity-provider presets.
BUILTIN = (
    "rfc6749", "fcc_finance", "fincalc", "figure",
    "entra", "auth0", "okta", "keycloak", "cognito", "salesforce", "pingone", "zitadel",
)

_lock = threading.Lock()
_entry_points: dict[str, EntryPoint] | None = None
_loaded: dict[str, Provider] = {}


def _builtin_entry_points() -> dict[str, EntryPoint]:
    from importlib.metadata import EntryPoint

    # The package's own providers, also when it runs from a source tree without metadata.
    return {
        name: EntryPoint(name, f"oauth_cc_auth.providers.{name}:provider", GROUP)
        for name in BUILTIN
    }


def _discover() -> dict[str, EntryPoint]:
    global _entry_points
    if _entry_points is None:
        with _lock:
            if _entry_points is None:
                from importlib.metadata import entry_points

                found = _builtin_entry_points()
                for ep in entry_points(group=GROUP):
                    found[ep.name] = ep
                _entry_points = found
    return _entry_points


def available_providers() -> list[str]:
    """Names of the installed providers, sorted."""
    return sorted(_discover())


def get_provider(name: str) -> Provider:
    """The installed provider called *name*.

    Raises:
        ConfigurationError: no provider of that name is installed, or its entry point does
            not name a :class:`Provider`.
    """
    provider = _loaded.get(name)
    if provider is not None:
        return provider
    found = _discover()
    if name not in found:
        raise ConfigurationError(
            f"unknown provider {name!r}; installed providers: {', '.join(sorted(found))}"
        )
    loaded = found[name].load()
    if not isinstance(loaded, Provider):
        raise ConfigurationError(
            f"entry point {found[name].value!r} for provider {name!r} is not a Provider"
        )
    _loaded[name] = loaded
    return loaded
