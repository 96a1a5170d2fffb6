"""Generated WhatsApp exports for the tests that need many messages."""

from __future__ import annotations

import datetime
from pathlib import Path


def generated_chat(path: Path, count: int) -> Path:
    """Write a two-person Android export of ``count`` messages, one a minute.

    The chat starts on 5 January 2026, so exports under about 11,000
    messages have no day of the month over 12 and read in either date order.
    """
    start = datetime.datetime(2026, 1, 5, 8, 0)
    lines = []
    for number in range(count):
        moment = start + datetime.timedelta(minutes=number)
        sender = "Sam Carter" if number % 2 else "Ana Souza"
        lines.append(f"{moment:%d/%m/%Y, %H:%M} - {sender}: message {number} about order\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return path
