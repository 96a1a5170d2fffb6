"""HTML to plain text with the standard library's :mod:`html.parser`.

Used when a message has no text/plain part. The output keeps paragraph and
line breaks and list items, and drops scripts, styles and the document head.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

#: Elements whose content is never visible text.
_SKIPPED_ELEMENTS = frozenset({"script", "style", "head", "title", "template"})

#: Elements that start and end on their own line.
_BLOCK_ELEMENTS = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "div",
        "dl",
        "dt",
        "dd",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tr",
        "ul",
    }
)

_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextExtractor(HTMLParser):
    """Collects visible text, turning block elements and ``<br>`` into newlines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_ELEMENTS:
            self._skip_depth += 1
        elif tag == "br":
            self.chunks.append("\n")
        elif tag in _BLOCK_ELEMENTS:
            self.chunks.append("\n")
            if tag == "li":
                self.chunks.append("- ")
        elif tag in ("td", "th"):
            self.chunks.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_ELEMENTS:
            self._skip_depth = max(self._skip_depth - 1, 0)
        elif tag in _BLOCK_ELEMENTS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip_depth == 0:
            self.chunks.append(data)


def html_to_text(markup: str) -> str:
    """Convert an HTML document or fragment to readable plain text.

    Parameters:
      markup: The HTML source. Broken markup is accepted.

    Returns:
      The visible text with runs of spaces collapsed, one line per block
      element or ``<br>``, at most one blank line in a row, and no leading or
      trailing whitespace.
    """
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()

    raw_lines = "".join(extractor.chunks).split("\n")
    lines = [_SPACES.sub(" ", line).strip() for line in raw_lines]
    text = "\n".join(lines)
    return _BLANK_LINES.sub("\n\n", text).strip()
