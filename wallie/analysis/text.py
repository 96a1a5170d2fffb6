"""Text folding, word sets and sentence spans shared by the offline rules.

The rules match folded text: lower case, accents removed, typographic
apostrophes made plain. Folding maps each character to exactly one character,
so a span found in the folded text is the same span in the original.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

#: Accented letters and typographic marks of the five supported languages,
#: each mapped to one plain character so that string offsets are kept.
_FOLD_TABLE = str.maketrans(
    "áàâãäåéèêëíìîïóòôõöúùûüçñœ’‘´`",
    "aaaaaaeeeeiiiiooooouuuucnœ''''",
)

_WORD = re.compile(r"[a-zß]+")
_DIGIT = re.compile(r"\d")

#: Sentence ends: ., ! or ? followed by white space, or a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def fold(text: str) -> str:
    """Return ``text`` in lower case without accents, with the same length.

    Note:
      A few characters change length when lower-cased (such as ``"İ"``). For
      such text the spans of the folded string no longer line up with the
      original, and callers show the folded text instead.
    """
    return text.lower().translate(_FOLD_TABLE)


def words(folded: str) -> set[str]:
    """Return the set of words of a folded text."""
    return set(_WORD.findall(folded))


def has_digit(text: str) -> bool:
    """Return whether ``text`` contains a decimal digit."""
    return _DIGIT.search(text) is not None


def sentence_spans(text: str) -> Iterator[tuple[int, int]]:
    """Yield the ``(start, end)`` offsets of the sentences of ``text``."""
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if match.start() > start:
            yield start, match.start()

        start = match.end()

    if start < len(text):
        yield start, len(text)
