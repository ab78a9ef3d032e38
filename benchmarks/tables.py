"""The tables a run prints: built from the measurements (and the verdict), as markdown
(printed, and in the JSON) and reStructuredText (``--rst``, for README.rst), with footnotes.

A cell that could not be measured says "n/a" with the reason as a numbered footnote of its
table; "—" is a flavour the library does not have.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from concurrency import MOMENTS, ConcurrencyResult
from fleet import CACHES, FleetParams
from impls import (
    AIOHTTP_OAUTH2_CLIENT,
    ASYNC_FLAVOURS,
    AUTHLIB,
    FLAVOURS,
    FLOOR,
    HTTPX_AUTH,
    OURS,
    OURS_DPOP,
    OURS_FILE,
    OURS_REDIS,
    PROOF_OURS,
    PROOF_REQUESTS_OAUTH2CLIENT,
    REQUESTS_AUTH,
    REQUESTS_OAUTH2CLIENT,
    REQUESTS_OAUTH2CLIENT_DPOP,
    REQUESTS_OAUTHLIB,
    STATIC_AUTH,
)
from imports import ImportTarget, median_difference
from refresh import INTERVAL, TOKEN_LATENCY, RefreshParams, RefreshResult
from timing import Samples, TimingResult
from verdict import OUR_NAMES, Checks, floor_ratio

__all__ = [
    "Footnotes",
    "Table",
    "auth_step_table",
    "concurrency_table",
    "fleet_table",
    "import_table",
    "per_request_table",
    "refresh_table",
    "verdict_table",
]

ROW_ORDER = (
    FLOOR,
    OURS,
    OURS_FILE,
    OURS_REDIS,
    AUTHLIB,
    REQUESTS_OAUTHLIB,
    REQUESTS_OAUTH2CLIENT,
    REQUESTS_AUTH,
    HTTPX_AUTH,
    AIOHTTP_OAUTH2_CLIENT,
    STATIC_AUTH,
    OURS_DPOP,
    REQUESTS_OAUTH2CLIENT_DPOP,
    PROOF_OURS,
    PROOF_REQUESTS_OAUTH2CLIENT,
)
FLEET_LABELS = {
    "memory": "memory (default)",
    "file": "file (`file:///tmp-dir`)",
    "redis": "Redis (`redis://127.0.0.1:port/0`)",
}


# -- tables and footnotes --------------------------------------------------------------------------


def _rst(text: str) -> str:
    """Markdown inline code (`x`) as reStructuredText's (``x``)."""
    return re.sub(r"`([^`]+)`", r"``\1``", text)


class Footnotes:
    """Numbered notes shared by the cells of a table: ``ref(text)`` gives a cell's marker."""

    def __init__(self) -> None:
        self._notes: dict[str, int] = {}

    def ref(self, text: str) -> str:
        number = self._notes.setdefault(text, len(self._notes) + 1)
        return f"[{number}]"

    def lines(self) -> list[str]:
        return [f"[{number}] {text}" for text, number in self._notes.items()]


@dataclasses.dataclass
class Table:
    """A titled table with optional footnotes."""

    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    notes: Sequence[str] = ()

    def markdown(self) -> str:
        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(cells) + " |"

        aligns = ["---", *["---:" for _ in self.headers[1:]]]
        out = [f"### {self.title}", "", line(self.headers), line(aligns)]
        out += [line(row) for row in self.rows]
        if self.notes:
            out += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(out)

    def rst(self) -> str:
        table = [[_rst(c) for c in self.headers], *[[_rst(c) for c in row] for row in self.rows]]
        widths = [max(len(row[i]) for row in table) for i in range(len(self.headers))]
        rule = " ".join("=" * w for w in widths)

        def line(cells: Sequence[str]) -> str:
            return " ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

        out = [self.title, "~" * len(self.title), "", rule, line(table[0]), rule]
        out += [line(row) for row in table[1:]]
        out.append(rule)
        if self.notes:
            out += ["", *[f"- {_rst(note)}" for note in self.notes]]
        return "\n".join(out)


# -- the tables of a run ---------------------------------------------------------------------------


def _names(by_flavour: dict[str, Any], also: Sequence[str] = ()) -> list[str]:
    present = {name for per in by_flavour.values() for name in per} | set(also)
    return [name for name in ROW_ORDER if name in present]


def _label(name: str) -> str:
    """This package's rows in bold."""
    return name.replace(OURS, f"**{OURS}**", 1) if name in OUR_NAMES else name


def _shared_note(t: TimingResult) -> str:
    setup = sorted(n for per in t.shared_setup_calls.values() for n in per.values())
    calls = sum(n for per in t.shared_calls.values() for n in per.values())
    first = (
        "none" if not setup else f"{setup[0]}–{setup[-1]}" if setup[0] != setup[-1] else setup[0]
    )
    return (
        "file cache, Redis cache: the same auth object given `cache=FileCache(dir)` or "
        "`cache=RedisCache(url)` (a redis-server of the benchmark's own, on loopback); its "
        "memory cache stays in front. Calls to its shared cache while it fetched its first "
        f"token: {first} each; during the timed rounds: {calls} in all."
    )


def _timing_rows(
    t: TimingResult,
    by_flavour: dict[str, Samples],
    width: int,
    cells: Callable[[Samples, str], list[str]],
    notes: Footnotes,
) -> list[list[str]]:
    """A row per implementation: in each flavour its *width* cells, from *cells*, or "n/a"
    (not timed, or not in that flavour; the reason a footnote) or "—" (no such flavour)."""
    absent = [name for per in t.absent.values() for name in per]
    rows: list[list[str]] = []
    for name in _names(by_flavour, [*t.unavailable, *absent]):
        row = [_label(name)]
        if name in t.unavailable:
            rows.append(row + [f"n/a {notes.ref(t.unavailable[name])}"] * width * len(FLAVOURS))
            continue
        for flavour in FLAVOURS:
            samples = by_flavour.get(flavour, {})
            if name in t.absent.get(flavour, {}):
                row += [f"n/a {notes.ref(t.absent[flavour][name])}"] * width
            elif name in samples:
                row += cells(samples, name)
            else:
                row += ["—"] * width
        rows.append(row)
    return rows


#: What the DPoP rows are, for the notes of both timing tables.
DPOP_NOTE = (
    "DPoP (RFC 9449; reported, not a target): **oauth_cc_auth**, DPoP is the same auth object "
    "given `dpop=True` (a fresh P-256 key): every request carries `Authorization: DPoP "
    "<token>` and a `DPoP` proof (an ES256 JWS, signed per request); requests-oauth2client, "
    "DPoP is its `OAuth2ClientCredentialsAuth` on an `OAuth2Client(..., "
    "dpop_bound_access_tokens=True)`. Their token endpoint answers `token_type: DPoP`."
)
PROOF_NOTE = (
    "DPoP proof alone: one API request's proof (method, URL, the token's hash `ath`), "
    'nothing else: oauth_cc_auth\'s `DPoPKey.proof("GET", url, token)` (in an async '
    "flavour called from a coroutine); requests-oauth2client's `DPoPKey.proof(htm, htu, ath)` "
    "with `ath` computed and the proof made text, as its `add_dpop_proof()` does."
)


def _dpop_notes(by_flavour: dict[str, Samples], *notes: str) -> list[str]:
    """*notes*, if the DPoP rows were timed."""
    return list(notes) if any(OURS_DPOP in per for per in by_flavour.values()) else []


def per_request_table(t: TimingResult) -> Table:
    def cells(samples: Samples, name: str) -> list[str]:
        ratio = floor_ratio(samples, name)
        return [f"{statistics.median(samples[name]):.1f}", f"{ratio:.3f}"]

    notes = Footnotes()
    rows = _timing_rows(t, t.per_request, 2, cells, notes)
    headers = ["implementation"]
    for flavour in FLAVOURS:
        headers += [f"{flavour} µs", "× floor"]
    return Table(
        "Per-request cost, warm token (median µs per request; ratio to the floor)",
        headers,
        rows,
        [
            "floor: a static `Authorization: Bearer` header set on the request, no auth object "
            "(aiohttp: among the `ClientSession`'s default headers).",
            "aiohttp: `ClientSession` objects on an in-process connector (aiohttp's own HTTP/1.1 "
            "writer and parser over an in-memory transport); niquests: a mounted in-process "
            "adapter, as for requests.",
            f"{STATIC_AUTH} (aiohttp and niquests; not a peer, no target): the floor's static "
            "header set by the cheapest auth object the library takes, an `async def` "
            "middleware (aiohttp) or niquests' own `BearerTokenAuth`: what the library charges "
            "for any auth object.",
            "— : the library has no such flavour.",
            _shared_note(t),
            *_dpop_notes(t.per_request, DPOP_NOTE),
            *notes.lines(),
        ],
    )


def auth_step_table(t: TimingResult) -> Table:
    def cells(samples: Samples, name: str) -> list[str]:
        return [f"{statistics.median(samples[name]):.2f}"]

    notes = Footnotes()
    rows = _timing_rows(t, t.auth_step, 1, cells, notes)
    return Table(
        "Bare auth step, warm token (median µs per call)",
        ["implementation", *[f"{flavour} µs" for flavour in FLAVOURS]],
        rows,
        [
            "The plugin's own work on one request and its 200 answer, without the HTTP "
            "client; the floor sets the header.",
            "— : the library has no such flavour.",
            "aiohttp: the middleware called with a new `ClientRequest` and a handler answering "
            "200 at once; niquests: the auth call and the response hooks it registered.",
            *_dpop_notes(t.auth_step, DPOP_NOTE, PROOF_NOTE),
            *notes.lines(),
        ],
    )


def _concurrency_cell(entry: dict[str, Any], notes: Footnotes) -> str:
    if "na" in entry:
        return "n/a " + notes.ref(entry["na"])
    outcomes = entry["outcomes"]
    counts = sorted({o["token_requests"] for o in outcomes})
    errors: dict[str, int] = {}
    for o in outcomes:
        for kind, n in o["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    text = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    if errors:
        callers = sum(o["callers"] for o in outcomes)
        failed = sum(errors.values())
        what = ", ".join(f"{kind} ×{n}" for kind, n in sorted(errors.items()))
        note = notes.ref(f"callers failed ({failed} of {callers}): {what}")
        return f"n/a {note}" if failed == callers else f"{text} {note}"
    return text


def concurrency_table(
    c: ConcurrencyResult, *, threads: int, tasks: int, latency: float, repeats: int
) -> Table:
    """*threads* and *tasks* needed a token at once, *repeats* times, from a token endpoint
    answering after *latency* seconds."""
    notes = Footnotes()
    headers = ["implementation"]
    for flavour in FLAVOURS:
        who = f"{tasks} tasks" if flavour in ASYNC_FLAVOURS else f"{threads} threads"
        headers += [f"{flavour}, {who}: cold", "at expiry"]
    rows: list[list[str]] = []
    for name in _names(c):
        row = [f"**{name}**" if name == OURS else name]
        for flavour in FLAVOURS:
            entry = c.get(flavour, {}).get(name)
            if entry is None:
                row += ["—", "—"]
                continue
            cells = [_concurrency_cell(entry[moment], notes) for moment in MOMENTS]
            if "note" in entry:
                cells = [f"{cell} {notes.ref(entry['note'])}" for cell in cells]
            row += cells
        rows.append(row)
    return Table(
        f"Token requests when many callers need a token at once (token endpoint latency "
        f"{latency * 1000:g} ms; {repeats} repeat(s), range shown if they differ)",
        headers,
        rows,
        ["— : the library has no such flavour.", *notes.lines()],
    )


def _fleet_cell(entry: dict[str, Any], moment: str, notes: Footnotes) -> str:
    if "na" in entry:
        return f"n/a ({entry['na']})"
    outcomes = entry["outcomes"]
    failed = [o["failed"] for o in outcomes if "failed" in o]
    waves = [o[moment] for o in outcomes if "failed" not in o]
    failures = " ".join(notes.ref(f"the fleet failed: {why}") for why in failed)
    if not waves:
        return f"n/a {failures}"
    cell = _concurrency_cell({"outcomes": waves}, notes)
    return f"{cell} {failures}" if failures else cell


def fleet_table(fleet: dict[str, dict[str, Any]], f: FleetParams) -> Table:
    notes = Footnotes()
    memory = notes.ref("each process has its own memory cache, so fetches its own token.")
    rows = [
        [
            FLEET_LABELS[kind] + (f" {memory}" if kind == "memory" else ""),
            f"{f.processes} x {f.threads}",
            *[_fleet_cell(fleet[kind], moment, notes) for moment in MOMENTS],
        ]
        for kind in CACHES
    ]
    return Table(
        f"Token requests from a fleet of processes (the `Emulator` on loopback; token endpoint "
        f"answering after {f.latency * 1000:g} ms, tokens living {f.lifetime:g} s; "
        f"{f.repeats} repeat(s), range shown if they differ)",
        ["cache", "processes x threads", "token requests cold", "at expiry"],
        rows,
        notes.lines(),
    )


def import_table(times: dict[str, list[float]], targets: Sequence[ImportTarget]) -> Table:
    rows: list[list[str]] = []
    for target in targets:
        values = times[target.label]
        over = "—"
        if target.baseline is not None:
            over = f"{median_difference(values, times[target.baseline]):+.1f} vs {target.baseline}"
        label = f"**{target.label}**" if target.label.startswith("oauth_cc_auth") else target.label
        rows.append([label, f"{statistics.median(values):.1f}", over])
    return Table(
        "Import time in a fresh interpreter (median ms)",
        ["import", "ms", "difference (median of paired runs, ms)"],
        rows,
    )


def refresh_table(r: RefreshResult, p: RefreshParams) -> Table:
    """API latency with and without refreshes, per flavour and implementation."""
    notes = Footnotes()
    headers = ["flavour", "implementation", "no refresh: p50 / p99 / max (ms)",
               "refreshes: p50 / p99 / max (ms)", "token requests", "p99, max vs no refresh"]
    rows: list[list[str]] = []
    for flavour in FLAVOURS:
        per = r.get(flavour, {})
        for name in _names({flavour: per}):
            entry = per[name]
            label = f"**{name}**" if name == OURS else name
            if "na" in entry:
                rows.append([flavour, label, f"n/a {notes.ref(entry['na'])}", "", "", ""])
                continue
            none, ref = entry["none"], entry["refresh"]

            def stats(s: dict[str, Any]) -> str:
                return f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} / {s['max_ms']:.1f}"

            if ref["errors"] or none["errors"]:
                failed = notes.ref(
                    f"{name} ({flavour}): {ref['errors']} of the requests after the token was "
                    f"made due failed ({none['errors']} without): it does not renew an "
                    "expired token by itself (client credentials need fetch_token())")
                rows.append([flavour, label, stats(none), f"requests fail {failed}",
                             f"{ref['token_requests']:g}", "—"])
                continue
            ratios = (f"{ref['p99_ms'] / none['p99_ms']:.2f}x, "
                      f"{ref['max_ms'] / none['max_ms']:.2f}x")
            rows.append([flavour, label, stats(none), stats(ref), f"{ref['token_requests']:g}",
                         ratios])
    callers = f"{p.threads} threads (sync) or {p.tasks} asyncio tasks"
    return Table(
        f"API latency across token refreshes ({callers} for {p.seconds:g} s; API round trip "
        f"{p.api_latency * 1000:g} ms, token endpoint {TOKEN_LATENCY * 1000:g} ms; a refresh "
        f"due every {INTERVAL:g} s; medians of {p.repeats} repeat(s))",
        headers,
        rows,
        ["Due: oauth_cc_auth's token is moved into its refresh window (still valid); a peer's "
         "expires, as its own leeway makes it refresh. Token requests: in the run with "
         "refreshes.", *notes.lines()],
    )


def verdict_table(checks: Checks) -> Table:
    rows = [[name, "pass" if v["pass"] else "**FAIL**", v["detail"]] for name, v in checks.items()]
    return Table("Targets of the issue", ["target", "result", "measured"], rows)
