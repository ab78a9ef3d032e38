"""The API reference (``docs/api.rst``) documents every public name: those of the package,
of ``oauth_cc_auth.providers`` (what a provider of one's own is built from) and of
``oauth_cc_auth.testing``, and each adapter's auth classes."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parent.parent / "docs" / "api.rst"


def _documented() -> set[str]:
    """Dotted names the page's autodoc directives document."""
    text = API.read_text(encoding="utf-8")
    names: set[str] = set()
    for match in re.finditer(r"^\.\. auto(?:module|class|function):: (\S+)\n((?:   .*\n)*)",
                             text, re.MULTILINE):
        target, options = match.groups()
        members = re.search(r":members:((?:.*\n)(?:\s{10,}.*\n)*)", options)
        if match.group(0).startswith(".. automodule") and members:
            names.update(f"{target}.{name.strip()}" for name in members.group(1).split(",")
                         if name.strip())
        else:
            names.add(target)
    return names


@pytest.mark.parametrize("module", ["oauth_cc_auth", "oauth_cc_auth.providers",
                                    "oauth_cc_auth.testing"])
def test_every_public_name_is_in_the_reference(module: str) -> None:
    """Documented under this module, or under another that exports the same object
    (``Provider`` is ``oauth_cc_auth.Provider`` and ``oauth_cc_auth.providers.Provider``)."""
    namespace = importlib.import_module(module)
    documented = [_resolve(name) for name in _documented()]
    missing = [name for name in namespace.__all__ if not name.startswith("_")
               and not any(getattr(namespace, name) is obj for obj in documented)]
    assert missing == []


def _resolve(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("adapter", ["requests", "httpx", "httpx2", "aiohttp", "niquests"])
def test_every_adapter_is_in_the_reference(adapter: str) -> None:
    module = importlib.import_module(f"oauth_cc_auth.{adapter}")
    classes = [name for name in ("ClientCredentialsAuth", "AsyncClientCredentialsAuth")
               if hasattr(module, name)]
    assert {f"oauth_cc_auth.{adapter}.{name}" for name in classes} <= _documented()
