"""Tables as markdown (printed) and reStructuredText (for README.rst), with footnotes."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

__all__ = ["Footnotes", "Table"]


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
