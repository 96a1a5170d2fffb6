"""The offline analyzer: multilingual rules, no network, no cost.

It is the default when no API key is set and the fallback when the cost
ceiling is reached. A reminder needs, in one sentence, a commitment or request
phrase and a future time expression; greetings, farewells ("see you
tomorrow") and dates in the past or used as references produce none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from wallie.logging import get_logger

from .entities import find_amounts, find_emails, find_phones, find_urls, phone_region
from .rules import SIGNAL_RULES, SIGNAL_WORDS, blank_closings, find_action
from .text import fold, sentence_spans, words
from .timeexpr import find_dates, find_time_of_day, might_contain_time, resolve_due
from .types import (
    AnalysisResult,
    Conversation,
    Entity,
    IntentSignal,
    Message,
    Party,
    ReminderDraft,
    ReminderKind,
    Usage,
)

logger = get_logger(__name__)

#: Version of the rules, reported as the model name in the usage.
RULES_VERSION = "rules-1"

#: Longest quote of the source sentence in a reminder's text, in characters.
MAX_QUOTE_CHARS = 160


class OfflineAnalyzer:
    """Find reminders, entities and buying signals with regexes and dateparser."""

    provider = "offline"

    def analyze(self, conversation: Conversation) -> AnalysisResult:
        """Analyze a conversation's new messages.

        Parameters:
          conversation: The messages and the user's time zone and language.

        Returns:
          The findings, with zero usage.
        """
        scan = _Scan(conversation)
        for message in conversation.messages:
            if message.direction != "system":
                scan.message(message)

        logger.debug(
            "Analyzed %d messages of conversation %s offline: %d reminders.",
            len(conversation.messages),
            conversation.conversation_id,
            len(scan.reminders),
        )
        return AnalysisResult(
            reminders=tuple(scan.reminders),
            entities=tuple(scan.entities),
            signals=tuple(scan.signals),
            usage=Usage(provider="offline", model=RULES_VERSION),
        )


def _contact_name(conversation: Conversation) -> str:
    for message in (*conversation.context, *conversation.messages):
        if message.direction == "inbound" and message.sender.strip():
            return message.sender.strip()

    return "the contact"


def _quote(sentence: str) -> str:
    sentence = " ".join(sentence.split())
    if len(sentence) <= MAX_QUOTE_CHARS:
        return sentence

    return sentence[: MAX_QUOTE_CHARS - 1].rstrip() + "…"


class _Scan:
    """Findings of one conversation, gathered message by message."""

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.zone = ZoneInfo(conversation.time_zone)
        self.region = phone_region(conversation.language, conversation.region)
        self.contact = _contact_name(conversation)
        self.reminders: list[ReminderDraft] = []
        self.entities: list[Entity] = []
        self.signals: list[IntentSignal] = []

    def message(self, message: Message) -> None:
        folded = fold(message.text)
        message_words = words(folded)
        self.entities.extend(find_emails(message.text, message.id))
        self.entities.extend(find_urls(message.text, message.id))
        self.entities.extend(find_phones(message.text, message.id, self.region))
        self.entities.extend(find_amounts(folded, message.id))
        if message.direction == "inbound" and not SIGNAL_WORDS.isdisjoint(
            message_words
        ):
            self._signals(message, folded, message_words)

        if might_contain_time(folded, message_words):
            self._times(message, folded)

    def _signals(self, message: Message, folded: str, message_words: set[str]) -> None:
        for rule in SIGNAL_RULES:
            if rule.words.isdisjoint(message_words):
                continue
            if rule.pattern.search(folded) is not None:
                self.signals.append(IntentSignal(rule.kind, rule.strength, message.id))

    def _times(self, message: Message, folded: str) -> None:
        now = message.sent_at.astimezone(self.zone)
        # Lower-casing changes the length of a few characters; quote the folded
        # text then, because its offsets no longer fit the original.
        original = message.text if len(message.text) == len(folded) else folded
        for start, end in sentence_spans(folded):
            sentence = blank_closings(folded[start:end])
            findings = find_dates(
                sentence, now, self.conversation.language, self.conversation.time_zone
            )
            for finding in findings:
                day = finding.day or (finding.moment.date() if finding.moment else None)
                if day is not None:
                    self.entities.append(Entity("date", day.isoformat(), message.id))

            action = find_action(sentence)
            if action is None:
                continue

            due = resolve_due(findings, find_time_of_day(sentence), now)
            if due is not None:
                self._remind(message, action.kind, due, original[start:end])

    def _remind(
        self, message: Message, kind: ReminderKind, due: datetime, sentence: str
    ) -> None:
        quote = _quote(sentence)
        sender = message.sender.strip() or self.contact
        promised_by: Party
        if kind == "commitment" and message.direction == "outbound":
            promised_by, text = "user", f"You promised {self.contact}: “{quote}”"
        elif kind == "commitment":
            promised_by, text = "contact", f"{sender} promised: “{quote}”"
        elif message.direction == "inbound":
            promised_by, text = "user", f"{sender} asked you: “{quote}”"
        else:
            promised_by, text = "contact", f"You asked {self.contact}: “{quote}”"

        self.reminders.append(
            ReminderDraft(
                text=text,
                due_at=due.astimezone(UTC),
                source_message_id=message.id,
                promised_by=promised_by,
                kind=kind,
            )
        )
