"""The pytest plugin (entry point ``pytest11``): the ``oauth_cc_emulator`` fixture.

Example::

    def test_my_client(oauth_cc_emulator):
        client = oauth_cc_emulator.client("figure")
        auth = ClientCredentialsAuth(client.client_id, client.client_secret,
                                     token_url=oauth_cc_emulator.token_url("figure"),
                                     **client.options())
        response = requests.get(oauth_cc_emulator.resource_url("figure"), auth=auth)
        assert response.status_code == 200
        assert oauth_cc_emulator.token_requests["figure"] == 1
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from oauth_cc_auth.testing._emulator import Emulator

__all__ = ["oauth_cc_emulator"]


@pytest.fixture
def oauth_cc_emulator() -> Iterator[Emulator]:
    """A running provider emulator on 127.0.0.1, new for each test."""
    # Imported here: the plugin is loaded by every pytest run where the package is installed.
    from oauth_cc_auth.testing._emulator import Emulator

    with Emulator() as emulator:
        yield emulator
