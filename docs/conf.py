"""Sphinx configuration of the oauth-cc-auth documentation (``sphinx-build -W docs out``)."""

from __future__ import annotations

import warnings

import oauth_cc_auth

project = "oauth-cc-auth"
author = "oauth-cc-auth developers"
copyright = "2026, oauth-cc-auth developers"
release = version = oauth_cc_auth.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the docstrings' Args: / Raises: / Example:: sections
    "sphinx_autodoc_typehints",
]
# sphinx-autodoc-typehints calls an API Sphinx 10 will remove: its warning is not ours.
warnings.filterwarnings("ignore", message=".*set_application.*")
html_theme = "furo"
html_title = f"oauth-cc-auth {release}"
exclude_patterns = ["_build"]

# The API reference documents the public names; what they refer to in the HTTP libraries
# and in the standard library is named, not linked (no inventories fetched: builds offline).
autodoc_member_order = "bysource"
autodoc_typehints = "description"
typehints_fully_qualified = False
always_document_param_types = False
nitpicky = False
