"""Inputs and results of the conversation analyzers, and the analyzer interface.

Every datetime here is aware. Message times and reminder due times are in UTC;
the conversation's IANA time zone says how the user reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

#: Who wrote a message: the contact, the user, or the messaging system.
Direction = Literal["inbound", "outbound", "system"]

#: The party who promised a reminder's action, or who was asked to do it.
Party = Literal["user", "contact"]

#: A commitment is promised by its sender; a request asks the other party.
ReminderKind = Literal["commitment", "request"]

#: Kinds of entities that the analyzers extract.
EntityKind = Literal["amount", "email", "phone", "date", "url"]

#: Kinds of buying signals that the analyzers extract.
SignalKind = Literal[
    "price",
    "quote",
    "quantity",
    "budget",
    "contract",
    "delivery_date",
    "demo",
    "meeting",
    "purchase",
]

ENTITY_KINDS: tuple[EntityKind, ...] = ("amount", "email", "phone", "date", "url")
SIGNAL_KINDS: tuple[SignalKind, ...] = (
    "price",
    "quote",
    "quantity",
    "budget",
    "contract",
    "delivery_date",
    "demo",
    "meeting",
    "purchase",
)


@dataclass(frozen=True)
class Message:
    """One message of a conversation.

    Attributes:
      id: The message's database id, used as the source of every finding.
      sent_at: When the message was sent, aware UTC.
      direction: ``"inbound"`` from the contact, ``"outbound"`` from the user.
      sender: The sender's display name, possibly empty.
      text: The message body as plain text.
    """

    id: int
    sent_at: datetime
    direction: Direction
    sender: str
    text: str

    def __post_init__(self) -> None:
        if self.sent_at.tzinfo is None:
            raise ValueError(
                f"Message {self.id} has a naive sent_at; pass an aware UTC time."
            )


@dataclass(frozen=True)
class Conversation:
    """New messages of one conversation, with what the analyzers need to read them.

    Attributes:
      messages: The messages to analyze, oldest first.
      time_zone: The user's IANA time zone name, such as ``"Europe/Madrid"``.
      language: The user's language hint as an ISO 639-1 code, such as ``"es"``.
      context: Earlier messages of the conversation, already analyzed. They
        help read the new ones, but findings never cite them.
      conversation_id: An id for log records, never shown to a model.
      region: ISO 3166 country code for phone numbers written without ``+``;
        ``None`` derives it from ``language``.
    """

    messages: tuple[Message, ...]
    time_zone: str = "UTC"
    language: str = "en"
    context: tuple[Message, ...] = ()
    conversation_id: int | str | None = None
    region: str | None = None

    @property
    def zone(self) -> ZoneInfo:
        """The user's time zone."""
        return ZoneInfo(self.time_zone)

    @property
    def message_ids(self) -> frozenset[int]:
        """Ids of the messages that findings may cite."""
        return frozenset(message.id for message in self.messages)


@dataclass(frozen=True)
class ReminderDraft:
    """A reminder proposed from a promise or a request with a time.

    Attributes:
      text: The sentence shown to the user.
      due_at: When the action is due, aware UTC.
      source_message_id: The message that contains the promise or request.
      promised_by: For a commitment, its sender. For a request, the party
        asked to act.
      kind: ``"commitment"`` or ``"request"``.
    """

    text: str
    due_at: datetime
    source_message_id: int
    promised_by: Party
    kind: ReminderKind


@dataclass(frozen=True)
class Entity:
    """A value found in a message.

    Attributes:
      kind: What the value is.
      value: The normalized value: a decimal string for amounts, E.164 for
        phone numbers, an ISO date for dates, the address or URL otherwise.
      message_id: The message it was found in.
      currency: ISO 4217 code for amounts, ``None`` for other kinds.
    """

    kind: EntityKind
    value: str
    message_id: int
    currency: str | None = None


@dataclass(frozen=True)
class IntentSignal:
    """A buying signal from the contact.

    Attributes:
      kind: What the contact asked about or stated.
      strength: From 0 (weak mention) to 1 (explicit statement).
      message_id: The message that contains the signal.
    """

    kind: SignalKind
    strength: float
    message_id: int


@dataclass(frozen=True)
class ScoreReason:
    """One term of a contact score.

    Attributes:
      code: A stable short code, such as ``"price_question"``.
      points: What the reason adds to the score, negative when it lowers it.
      text: A sentence for the user.
    """

    code: str
    points: int
    text: str

    def as_dict(self) -> dict[str, Any]:
        """Return the reason as a JSON-ready mapping."""
        return {"code": self.code, "points": self.points, "text": self.text}


@dataclass(frozen=True)
class ContactScore:
    """A contact's lead score.

    Attributes:
      score: From 0 to 100, the clamped sum of the reasons' points.
      reasons: The terms of the score, largest contribution first.
      strong_intent: Whether the contact stated an explicit purchase, order or
        signature, which calls for a hot-lead notice at once.
    """

    score: int
    reasons: tuple[ScoreReason, ...]
    strong_intent: bool


@dataclass(frozen=True)
class Usage:
    """Provider usage of one analysis.

    Attributes:
      provider: ``"openai"`` or ``"offline"``.
      model: The model name, or the offline rules' version.
      tokens_in: Prompt tokens.
      tokens_out: Completion tokens.
      cost_usd: The estimated cost in US dollars.
    """

    provider: str
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal(0)


@dataclass(frozen=True)
class AnalysisResult:
    """What an analyzer found in a conversation's new messages.

    Attributes:
      reminders: Reminder drafts, in message order.
      entities: Entities, in message order.
      signals: Buying signals from the contact, in message order.
      usage: Provider usage, zero for the offline analyzer.
      score: The model's contact score, ``None`` from the offline analyzer.
        Callers that need a score either way use
        :func:`wallie.analysis.scoring.score_contact`.
    """

    reminders: tuple[ReminderDraft, ...]
    entities: tuple[Entity, ...]
    signals: tuple[IntentSignal, ...]
    usage: Usage
    score: ContactScore | None = None


class Analyzer(Protocol):
    """Something that analyzes a conversation's new messages."""

    #: ``"openai"`` or ``"offline"``.
    provider: str

    def analyze(self, conversation: Conversation) -> AnalysisResult:
        """Analyze ``conversation.messages`` and return the findings."""
        ...
