"""Builders of conversations for the analysis tests."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from wallie.analysis import AnalysisResult, Conversation, Message, OfflineAnalyzer
from wallie.analysis.types import Direction


def conversation(
    *rows: tuple[str, Direction, str],
    time_zone: str = "Europe/London",
    language: str = "en",
) -> Conversation:
    """Build a conversation from (UTC ISO time, direction, text) rows, ids from 1."""
    messages = tuple(
        Message(
            id=index,
            sent_at=datetime.fromisoformat(sent_at),
            direction=direction,
            sender="Ana" if direction == "inbound" else "Tom",
            text=text,
        )
        for index, (sent_at, direction, text) in enumerate(rows, start=1)
    )
    return Conversation(messages, time_zone=time_zone, language=language)


def analyze_one(
    text: str,
    sent_at: str = "2026-12-04T10:00:00+00:00",
    direction: Direction = "outbound",
    time_zone: str = "Europe/London",
    language: str = "en",
) -> AnalysisResult:
    """Analyze one message offline."""
    return OfflineAnalyzer().analyze(
        conversation((sent_at, direction, text), time_zone=time_zone, language=language)
    )


def local_due(result: AnalysisResult, time_zone: str, index: int = 0) -> str:
    """Return a reminder's due time as local ``YYYY-MM-DD HH:MM``."""
    due = result.reminders[index].due_at.astimezone(ZoneInfo(time_zone))
    return due.strftime("%Y-%m-%d %H:%M")
