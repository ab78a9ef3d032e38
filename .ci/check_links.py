"""The links between the documentation's pages, in the built HTML: every relative link
names a page that was built, and every ``#fragment`` an id on that page. (External links
are not fetched: CI builds offline.) Usage: ``python .ci/check_links.py BUILD_DIR``."""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")


def main(root: Path) -> int:
    pages: dict[Path, _Page] = {}
    for path in sorted(root.rglob("*.html")):
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        pages[path.resolve()] = page
    broken: list[str] = []
    checked = 0
    for path, page in pages.items():
        for href in page.links:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith("mailto:"):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if target.suffix == ".html" and target not in pages:
                broken.append(f"{path.relative_to(root.resolve())}: {href} (no such page)")
            elif target.suffix != ".html" and not target.exists():
                broken.append(f"{path.relative_to(root.resolve())}: {href} (no such file)")
            elif parts.fragment and target in pages and \
                    unquote(parts.fragment) not in pages[target].ids:
                broken.append(f"{path.relative_to(root.resolve())}: {href} (no such anchor)")
    for line in broken:
        print(f"broken link: {line}", file=sys.stderr)
    print(f"links between pages: {checked} checked in {len(pages)} pages, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
