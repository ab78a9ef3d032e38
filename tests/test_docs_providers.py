"""The provider pages of the documentation, ``docs/providers/``, against the registry: one page
per installed provider, each in the index's toctree, each stating the provider's client
authentication methods, environments and required fields as the registry has them; and no
page for a provider that is not installed. A page cannot drift from the code it documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from oauth_cc_auth import available_providers, get_provider

PAGES = Path(__file__).resolve().parent.parent / "docs" / "providers"
INDEX = PAGES / "index.rst"


def _field(text: str, name: str) -> str | None:
    """The value of the field ``:name:`` of a page's field list, its continuation lines
    joined, whitespace collapsed; ``None`` when the page has no such field."""
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.startswith(f":{name}:"):
            value = [line[len(name) + 2:]]
            for more in lines[number + 1:]:
                if not more.strip() or not more[0].isspace():
                    break
                value.append(more)
            return " ".join(" ".join(value).split())
    return None


def _toctree(text: str) -> list[str]:
    """The entries of the toctree directives of *text*."""
    entries: list[str] = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.strip() != ".. toctree::":
            continue
        for more in lines[number + 1:]:
            if more.strip() and not more[0].isspace():
                break
            entry = more.strip()
            if entry and not entry.startswith(":"):
                entries.append(entry)
    return entries


def _page(name: str) -> str:
    path = PAGES / f"{name}.rst"
    assert path.is_file(), f"no page for provider {name!r}: write docs/providers/{name}.rst"
    return path.read_text(encoding="utf-8")


def _literal(value: str) -> str:
    return f"``{value}``"


@pytest.mark.parametrize("name", available_providers())
class TestProviderPage:
    def test_the_page_exists_and_is_in_the_toctree(self, name: str) -> None:
        _page(name)
        assert name in _toctree(INDEX.read_text(encoding="utf-8")), (
            f"docs/providers/index.rst's toctree does not list {name}")

    def test_the_page_names_the_provider(self, name: str) -> None:
        name_field = _field(_page(name), "Name")
        assert name_field is not None, f"{name}.rst has no ':Name:' field"
        assert name_field.startswith(_literal(f'provider="{name}"'))

    def test_auth_methods_as_registered(self, name: str) -> None:
        methods = get_provider(name).auth_methods
        expected = ", ".join(
            [f"{_literal(methods[0])} (default)", *(_literal(m) for m in methods[1:])])
        assert _field(_page(name), "Auth methods") == expected

    def test_environments_as_registered(self, name: str) -> None:
        provider = get_provider(name)
        stated = _field(_page(name), "Environments")
        assert stated is not None, f"{name}.rst has no ':Environments:' field"
        if not provider.environments:
            assert stated.startswith("none"), f"{name}.rst: {name} documents no environment"
            assert "https://" not in stated
            return
        expected = "; ".join(
            f"{_literal(env)}{' (default)' if env == provider.default_environment else ''}: "
            f"{_literal(url)}"
            for env, url in provider.environments.items()
        )
        assert stated == expected

    def test_required_fields_as_registered(self, name: str) -> None:
        provider = get_provider(name)
        # As `oauth-cc-auth providers` says: a token URL when it documents none, and the
        # fields it requires.
        required = ([] if provider.environments else ["token_url"]) + list(
            provider.required_fields)
        stated = _field(_page(name), "Requires")
        assert stated is not None, f"{name}.rst has no ':Requires:' field"
        if required:
            assert stated == ", ".join(_literal(field) for field in required)
        else:
            assert stated.startswith("none"), f"{name}.rst: {name} requires nothing more"


def test_no_page_or_entry_for_a_provider_not_installed() -> None:
    installed = set(available_providers())
    pages = {path.stem for path in PAGES.glob("*.rst")} - {"index"}
    assert pages - installed == set(), "pages for providers that are not installed"
    entries = set(_toctree(INDEX.read_text(encoding="utf-8")))
    assert entries - installed == set(), "toctree entries for providers not installed"
    assert installed <= pages


def test_the_field_reader() -> None:
    text = ":Auth methods: ``a`` (default),\n    ``b``\n:Body: form\n\nmore\n"
    assert _field(text, "Auth methods") == "``a`` (default), ``b``"
    assert _field(text, "Body") == "form"
    assert _field(text, "Lifetime") is None
