"""Runs the Python examples of the documentation, ``docs/*.rst`` (Sybil), in page order, one
namespace per page. (At the root, so that its collection hook sees every item.)

The network is the package's emulator, answering in process: every request of requests and
httpx (the libraries the pages' examples use) goes to it, with the example hosts mapped to
its ``rfc6749`` site: ``https://auth.example.com/oauth/token`` is its token endpoint,
``https://api.example.com/...`` its protected resource. The examples' client,
``my-client-id`` with ``my-client-secret``, is registered there. Each page gets ``emulator``
in its namespace besides what its examples define.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests_mock
import respx
from sybil import Sybil
from sybil.parsers.rest import PythonCodeBlockParser

from oauth_cc_auth.testing import EmulatedClient, Emulator, NoAnswer
from oauth_cc_auth.testing._emulator import SITES

#: The hosts of the examples, and the emulator's paths they stand for (None: as given).
API_HOST = "api.example.com"
AUTH_HOST = "auth.example.com"


def _on_emulator(emulator: Emulator, url: str) -> str:
    """*url* of an example as the emulator serves it."""
    parts = urlsplit(url)
    if parts.hostname == API_HOST:
        path = SITES["rfc6749"].resource_path
        return urlunsplit(("https", AUTH_HOST, path, parts.query, ""))
    return url


def _setup(namespace: dict[str, Any]) -> None:
    emulator = Emulator()
    emulator.register_client(EmulatedClient("rfc6749", "my-client-id", "my-client-secret"))
    stack = contextlib.ExitStack()

    def answer_requests(request: Any, context: Any) -> bytes:
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        try:
            answered = emulator.handle(request.method, _on_emulator(emulator, request.url),
                                       request.headers, body)
        except NoAnswer as exc:
            raise ConnectionError(f"no answer ({exc.kind})") from None
        context.status_code = answered.status
        context.headers.update(answered.headers)
        return answered.body

    # Requests to the examples' hosts only: an emulator an example serves on 127.0.0.1
    # itself is reached over loopback.
    mocker = stack.enter_context(requests_mock.Mocker(real_http=True))
    for host in (API_HOST, AUTH_HOST):
        mocker.register_uri(requests_mock.ANY, re.compile(rf"https://{re.escape(host)}/"),
                            content=answer_requests)

    import httpx

    def answer_httpx(request: httpx.Request) -> Any:
        answered = emulator.handle(request.method, _on_emulator(emulator, str(request.url)),
                                   request.headers.multi_items(), request.read())
        return httpx.Response(answered.status, headers=answered.headers,
                              content=answered.body)

    router = stack.enter_context(respx.mock(assert_all_called=False))
    for host in (API_HOST, AUTH_HOST):
        router.route(host=host).mock(side_effect=answer_httpx)
    router.route().pass_through()
    namespace["emulator"] = emulator
    namespace["__stack"] = stack


def _teardown(namespace: dict[str, Any]) -> None:
    namespace["__stack"].close()


_SYBIL = Sybil(parsers=[PythonCodeBlockParser()], patterns=["docs/*.rst"])


class ExampleFailed(Exception):
    """An example of a page failed: where it is, with the failure as its cause."""


class PageItem(pytest.Item):
    """Every Python example of one page, run in order in one namespace: a page is a story
    (its examples build on each other), so it is one test, whatever the worker."""

    def __init__(self, *, document: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.document = document

    def runtest(self) -> None:
        namespace = self.document.namespace
        _setup(namespace)
        try:
            for example in self.document.examples():
                try:
                    example.evaluate()
                except Exception as exc:
                    raise ExampleFailed(
                        f"{self.path.name}, the example at line {example.line}: "
                        f"{type(exc).__name__}: {exc}") from exc
        finally:
            _teardown(namespace)

    def reportinfo(self) -> tuple[Any, int, str]:
        return self.path, 0, f"{self.path.name}: its Python examples"


class PageFile(pytest.File):
    def collect(self) -> Any:
        document = _SYBIL.parse(self.path)
        count = sum(1 for _ in document.examples())
        if count:  # a page without a Python example is no test
            yield PageItem.from_parent(self, name=f"{count} examples", document=document)


def pytest_collect_file(file_path: Any, parent: pytest.Collector) -> PageFile | None:
    if _SYBIL.should_parse(file_path):
        return PageFile.from_parent(parent, path=file_path)
    return None
