"""Runs the examples of the documentation, ``README.rst`` and ``docs/**/*.rst`` (Sybil), one
test per page. (At the root, so that its collection hook sees every item.)

A page is a story: its examples run in order, in one namespace, in a fresh working
directory holding the key and certificate files the examples name, with one asyncio event
loop for its top-level ``await``. The network is the documentation's world
(``tests/docs_world.py``): the hosts the examples name, served over loopback by the
package's emulator, with the recipes' APIs beside it.

- ``.. code-block:: python``: run as written (top-level ``await`` allowed).
- ``.. code-block:: console``: each ``$`` line is run, and the lines after it (if any) are its
  expected output (``...`` matches anything within a line). Understood: ``export``,
  ``oauth-cc-auth`` (the command, in process), ``http`` (HTTPie, in process), ``python
  SCRIPT`` (a file of the repository, in a subprocess), ``python -m pip install`` of this
  package (checked rather than run: the extras named exist and what they require is
  installed), and ``python -m pytest ARGS`` (collected rather than run: the suite inside its
  own test; the arguments must select tests). Anything else fails the page.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.metadata
import inspect
import io
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from sybil import Example, Sybil
from sybil.parsers.rest import CodeBlockParser

ROOT = Path(__file__).resolve().parent
PACKAGE = "oauth-cc-auth"


# -- Python ------------------------------------------------------------------------------------

def evaluate_python(example: Example) -> None:
    """Run a Python block in the page's namespace; a block with top-level ``await`` runs on
    the page's event loop."""
    source = "\n" * (example.line + example.parsed.line_offset) + example.parsed
    code = compile(source, str(example.path), "exec",
                   flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    namespace = example.namespace
    if code.co_flags & inspect.CO_COROUTINE:
        # The documentation's own examples: running them is the point.
        namespace["__page__"].runner.run(eval(code, namespace))  # noqa: S307
    else:
        exec(code, namespace)  # noqa: S102
    namespace.pop("__builtins__", None)


# -- console -----------------------------------------------------------------------------------

def _commands(text: str) -> list[tuple[str, list[str]]]:
    """``$`` command lines (continuations joined) and the output lines after each."""
    commands: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.startswith("$ "):
            if not commands:
                if line.strip():
                    raise ValueError(f"console text before any '$ ' command: {line!r}")
                continue
            commands[-1][1].append(line)
            continue
        command = line[2:]
        while command.endswith("\\") and index < len(lines):
            command = command[:-1] + " " + lines[index].strip()
            index += 1
        commands.append((command, []))
    return commands


def _matches(output: str, expected: list[str]) -> bool:
    """Whether *output* is the *expected* lines: ``...`` within a line matches anything on
    that line, a line of just ``...`` one line or more; blank lines are left out of both. No
    expected lines: anything."""
    want = [line.strip() for line in expected if line.strip()]
    if not want:
        return True
    pattern = "".join(
        r"(?:[^\n]*\n)+?" if line == "..."
        else "[^\\n]*".join(map(re.escape, line.split("..."))) + r"\n"
        for line in want)
    got = "".join(line.strip() + "\n" for line in output.splitlines() if line.strip())
    return re.fullmatch(pattern, got) is not None


def _check_install(args: list[str]) -> str:
    """``pip install`` of this package: its extras exist and what they need is installed."""
    specs = [a for a in args if a.startswith((PACKAGE, "."))]
    if not specs:
        raise AssertionError(f"pip install of something else than {PACKAGE}: {args}")
    metadata = importlib.metadata.metadata(PACKAGE)
    offered = set(metadata.get_all("Provides-Extra") or ())
    requires = [Requirement(r) for r in metadata.get_all("Requires-Dist") or ()]
    for spec in specs:
        extras = set(re.findall(r"\[([^\]]*)\]", spec)[0].split(",")) if "[" in spec else set()
        unknown = extras - offered
        if unknown:
            raise AssertionError(f"{spec}: no extra {sorted(unknown)} (has {sorted(offered)})")
        for requirement in requires:
            marker = requirement.marker
            if marker is not None and not any(marker.evaluate({"extra": e}) for e in extras):
                continue
            try:
                installed = importlib.metadata.version(requirement.name)
            except importlib.metadata.PackageNotFoundError:
                raise AssertionError(f"{spec}: {requirement.name} is not installed") from None
            if installed not in requirement.specifier:
                raise AssertionError(f"{spec}: {requirement.name} {installed} does not "
                                     f"satisfy {requirement}")
    return ""


def _run_cli(args: list[str]) -> str:
    from oauth_cc_auth import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(args)
        except SystemExit as exit:  # --help, or a usage error of argparse
            status = exit.code if isinstance(exit.code, int) else 2
    if status != 0:
        raise AssertionError(f"oauth-cc-auth exited {status}: {err.getvalue().strip()}")
    return out.getvalue()


def _run_httpie(args: list[str], page: Page) -> str:
    from httpie.context import Environment
    from httpie.core import main

    stdout, stderr = io.BytesIO(), io.StringIO()
    env = Environment(stdin=None, stdin_isatty=True, stdout=io.TextIOWrapper(stdout),
                      stdout_isatty=False, stderr=stderr, stderr_isatty=False,
                      config_dir=page.directory / "httpie")
    status = main(["http", *args], env=env)
    env.stdout.flush()
    if int(status) != 0:
        raise AssertionError(f"http exited {int(status)}: {stderr.getvalue().strip()}")
    return stdout.getvalue().decode()


def _run_python(args: list[str]) -> str:
    if args[:2] == ["-m", "pytest"]:
        # The suite inside its own test: the command is collected, not run.
        command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0",
                   "-p", "no:cacheprovider", *args[2:]]
        done = subprocess.run(command, cwd=ROOT, capture_output=True,  # noqa: S603
                              text=True, timeout=300, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} collects no test: {done.stdout[-2000:]}")
        return ""
    if args[:3] == ["-m", "pip", "install"]:
        return _check_install(args[3:])
    if not args or not (ROOT / args[0]).is_file():
        raise AssertionError(f"python {' '.join(args)}: not a file of the repository")
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True,  # noqa: S603
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise AssertionError(f"python {' '.join(args)} exited {done.returncode}: "
                             f"{done.stderr[-2000:]}")
    return done.stdout


def _run(words: list[str], page: Page) -> str:
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words = words[1:]  # VAR=value before a command: for the real shell, not needed here
    if not words:
        return ""
    name, args = words[0], words[1:]
    if name == "export":
        for assignment in args:
            key, sep, value = assignment.partition("=")
            if not sep:
                raise AssertionError(f"export {assignment}: NAME=VALUE expected")
            os.environ[key] = value
        return ""
    if name == PACKAGE:
        return _run_cli(args)
    if name == "http":
        return _run_httpie(args, page)
    if name == "python":
        return _run_python(args)
    raise AssertionError(f"the examples' console runner does not know {name!r}")


def evaluate_console(example: Example) -> None:
    page: Page = example.namespace["__page__"]
    for command, expected in _commands(str(example.parsed)):
        words = shlex.split(command, comments=True)
        output = ""
        while words:
            if "&&" in words:
                cut = words.index("&&")
                output, words = _run(words[:cut], page), words[cut + 1:]
            else:
                output, words = _run(words, page), []
        if not _matches(output, expected):
            raise AssertionError(f"$ {command}\nexpected:\n" + "\n".join(expected)
                                 + f"\ngot:\n{output}")


# -- pages -------------------------------------------------------------------------------------

class Page:
    """What one page's examples run in: a working directory with the files, an event
    loop, a clean ``OAUTH_CC_*`` environment, and the documentation's world."""

    def __init__(self) -> None:
        self.stack = contextlib.ExitStack()
        self.directory = Path(self.stack.enter_context(
            tempfile.TemporaryDirectory(prefix="oauth-cc-docs-")))
        self.runner = self.stack.enter_context(asyncio.Runner())

    def __enter__(self) -> Page:
        from oauth_cc_auth._slots import default_cache
        from tests import docs_world

        # Each page starts with no token nor metadata of another's in the process-wide cache.
        default_cache.clear()
        self.stack.callback(default_cache.clear)
        docs_world.write_files(self.directory)
        saved_environ, saved_cwd = dict(os.environ), os.getcwd()

        def restore() -> None:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_environ)

        self.stack.callback(restore)
        for name in [n for n in os.environ if n.startswith("OAUTH_CC_")]:
            del os.environ[name]
        os.environ["XDG_CACHE_HOME"] = str(self.directory / "cache")
        os.environ["HTTPIE_CONFIG_DIR"] = str(self.directory / "httpie")
        os.chdir(self.directory)
        self.world = self.stack.enter_context(docs_world.running(self.directory))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stack.close()


_SYBIL = Sybil(parsers=[CodeBlockParser("python", evaluate_python),
                        CodeBlockParser("console", evaluate_console)],
               patterns=["*.rst"])


class ExampleFailed(Exception):
    """An example of a page failed: where it is, with the failure as its cause."""


class PageItem(pytest.Item):
    """Every example of one page, run in order: one test, whatever the worker."""

    def __init__(self, *, document: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.document = document

    def runtest(self) -> None:
        namespace = self.document.namespace
        with Page() as page:
            namespace["__page__"] = page
            try:
                for example in self.document.examples():
                    try:
                        example.evaluate()
                    except Exception as exc:
                        raise ExampleFailed(
                            f"{self.path.name}, the example at line {example.line}: "
                            f"{type(exc).__name__}: {exc}") from exc
            finally:
                namespace.clear()

    def reportinfo(self) -> tuple[Any, int, str]:
        return self.path, 0, f"{self.path.name}: its examples"


class PageFile(pytest.File):
    def collect(self) -> Any:
        document = _SYBIL.parse(self.path)
        count = sum(1 for _ in document.examples())
        if count:  # a page without an example is no test
            item = PageItem.from_parent(self, name=f"{count} examples", document=document)
            if re.search(r"^\s*\$ .*oauth-cc-auth demo", document.text, re.MULTILINE):
                item.add_marker(pytest.mark.slow)  # the whole demo: about a minute
            yield item


def _is_page(path: Path) -> bool:
    if path.suffix != ".rst":
        return False
    if path == ROOT / "README.rst":
        return True
    docs = ROOT / "docs"
    return docs in path.parents and "_build" not in path.relative_to(docs).parts


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> PageFile | None:
    if _is_page(file_path):
        return PageFile.from_parent(parent, path=file_path)
    return None

