"""Measure an analyzer against labelled conversations.

The labelled set is JSON: conversations with their messages, the expected
reminders (source message, keywords, local due time) and whether the contact
is hot. A found reminder matches an expected one when it cites the same
message, is due within the set's tolerance and its text contains every
keyword, with case and accents ignored. Scores are ranked against the hot
labels with ROC AUC and precision at k, where k is the number of hot contacts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .scoring import score_contact
from .text import fold
from .types import Analyzer, Conversation, Message, ReminderDraft


@dataclass(frozen=True)
class ExpectedReminder:
    """A reminder that a labelled conversation should produce.

    Attributes:
      message_id: The source message.
      keywords: Words that the reminder's text must contain.
      due_local: The due time, naive, in the conversation's time zone.
    """

    message_id: int
    keywords: tuple[str, ...]
    due_local: datetime


@dataclass(frozen=True)
class LabelledConversation:
    """A conversation with its expected reminders and hot label.

    Attributes:
      name: The conversation's id in the data file.
      conversation: The input for the analyzer.
      expected: The reminders it should produce.
      hot: Whether the contact is a hot lead.
      now: The moment the contact is scored at.
    """

    name: str
    conversation: Conversation
    expected: tuple[ExpectedReminder, ...]
    hot: bool
    now: datetime


@dataclass(frozen=True)
class LabelledSet:
    """The conversations of a data file and its matching tolerance.

    Attributes:
      conversations: The labelled conversations.
      tolerance: The largest difference between a found and expected due time.
    """

    conversations: tuple[LabelledConversation, ...]
    tolerance: timedelta


@dataclass
class QualityReport:
    """Reminder precision and recall, and score ranking quality.

    Attributes:
      true_positives: Found reminders that match an expected one.
      false_positives: Found reminders that match none, as (conversation,
        message id, local due time).
      false_negatives: Expected reminders not found, as (conversation, message
        id, local due time).
      scores: (conversation, score, hot label) for every conversation.
    """

    true_positives: int = 0
    false_positives: list[tuple[str, int, str]] = field(default_factory=list)
    false_negatives: list[tuple[str, int, str]] = field(default_factory=list)
    scores: list[tuple[str, int, bool]] = field(default_factory=list)

    @property
    def precision(self) -> float:
        """Share of found reminders that match an expected one."""
        found = self.true_positives + len(self.false_positives)
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        """Share of expected reminders that were found."""
        expected = self.true_positives + len(self.false_negatives)
        return self.true_positives / expected if expected else 1.0

    @property
    def roc_auc(self) -> float:
        """Chance that a random hot contact outscores a random other one, ties half."""
        hot = [score for _, score, label in self.scores if label]
        cold = [score for _, score, label in self.scores if not label]
        if not hot or not cold:
            return float("nan")

        wins = 0.0
        for hot_score in hot:
            for cold_score in cold:
                if hot_score > cold_score:
                    wins += 1.0
                elif hot_score == cold_score:
                    wins += 0.5

        return wins / (len(hot) * len(cold))

    @property
    def precision_at_k(self) -> float:
        """Share of hot contacts among the k best scores, k the number of hot ones."""
        k = sum(1 for _, _, label in self.scores if label)
        if k == 0:
            return float("nan")

        ranked = sorted(self.scores, key=lambda row: (-row[1], row[0]))
        return sum(1 for _, _, label in ranked[:k] if label) / k


def _message(row: dict[str, Any]) -> Message:
    return Message(
        id=row["id"],
        sent_at=datetime.fromisoformat(row["sent_at"]),
        direction=row["direction"],
        sender=row["sender"],
        text=row["text"],
    )


def load_labelled(path: Path) -> LabelledSet:
    """Read a labelled set from a JSON file.

    Parameters:
      path: The data file.

    Returns:
      The conversations and the matching tolerance.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    default_now = datetime.fromisoformat(data["default_now"])
    conversations = []
    for row in data["conversations"]:
        conversation = Conversation(
            messages=tuple(_message(message) for message in row["messages"]),
            time_zone=row["time_zone"],
            language=row["language"],
            conversation_id=row["id"],
        )
        expected = tuple(
            ExpectedReminder(
                message_id=item["message_id"],
                keywords=tuple(item["keywords"]),
                due_local=datetime.fromisoformat(item["due_local"]),
            )
            for item in row["reminders"]
        )
        now = datetime.fromisoformat(row["now"]) if "now" in row else default_now
        conversations.append(
            LabelledConversation(row["id"], conversation, expected, row["hot"], now)
        )

    return LabelledSet(
        tuple(conversations), timedelta(minutes=data["tolerance_minutes"])
    )


def reminder_matches(
    found: ReminderDraft,
    expected: ExpectedReminder,
    zone: ZoneInfo,
    tolerance: timedelta,
) -> bool:
    """Return whether a found reminder matches an expected one.

    Parameters:
      found: The analyzer's reminder.
      expected: The labelled reminder.
      zone: The conversation's time zone.
      tolerance: The largest allowed difference between the due times.
    """
    if found.source_message_id != expected.message_id:
        return False

    due_local = found.due_at.astimezone(zone).replace(tzinfo=None)
    if abs(due_local - expected.due_local) > tolerance:
        return False

    text = fold(found.text)
    return all(fold(keyword) in text for keyword in expected.keywords)


def _match(
    report: QualityReport,
    labelled: LabelledConversation,
    found: Sequence[ReminderDraft],
    tolerance: timedelta,
) -> None:
    zone = labelled.conversation.zone
    unmatched = list(labelled.expected)
    for reminder in found:
        hit = next(
            (e for e in unmatched if reminder_matches(reminder, e, zone, tolerance)),
            None,
        )
        if hit is not None:
            unmatched.remove(hit)
            report.true_positives += 1
        else:
            due = reminder.due_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
            report.false_positives.append(
                (labelled.name, reminder.source_message_id, due)
            )

    for expected in unmatched:
        due = expected.due_local.strftime("%Y-%m-%d %H:%M")
        report.false_negatives.append((labelled.name, expected.message_id, due))


def evaluate(analyzer: Analyzer, labelled: LabelledSet) -> QualityReport:
    """Run an analyzer over a labelled set and measure it.

    Parameters:
      analyzer: The analyzer to measure.
      labelled: The labelled conversations.

    Returns:
      The reminder matches and the scores next to the hot labels. The offline
      analyzer gives no score, so its contacts are scored with
      :func:`score_contact`.
    """
    report = QualityReport()
    for item in labelled.conversations:
        result = analyzer.analyze(item.conversation)
        _match(report, item, result.reminders, labelled.tolerance)
        score = result.score or score_contact(
            item.conversation.messages,
            result.signals,
            item.now,
            entities=result.entities,
            time_zone=item.conversation.time_zone,
        )
        report.scores.append((item.name, score.score, item.hot))

    return report
