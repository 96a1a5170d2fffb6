"""Store what the analyzers find: reminders, entities, buying signals, lead scores.

This is the database side of :mod:`wallie.analysis`, whose analyzers stay
pure. :func:`analyze_conversation` sends the messages never analysed
(``Message.analyzed_at IS NULL``) to an analyzer in batches, with earlier
messages as context. Each batch's findings are stored in the transaction that
marks its messages analysed. So a crash or a retry analyses a message at most
once more, and never stores a finding twice:

* a reminder's ``key`` is a hash of its source message id and its normalized
  text, and inserts ignore a key that exists;
* entities are unique per message, kind and value.

Buying signals are stored as :class:`~wallie.db.models.Entity` rows whose kind
is ``signal:`` and the signal kind, with the strength as the value, so that
:func:`score_conversation` can score a contact later from stored facts alone.
An amount's currency is stored after the number (``"5000 EUR"``).

:func:`score_conversation` scores each contact of a conversation and appends
a :class:`~wallie.db.models.LeadScore` row (the history); it reports a
*crossing* when the contact becomes hot: the score reaches the threshold from
below, or a strong intent appears while the contact was not hot.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import peewee

from ..db.fields import utcnow
from ..db.models import (
    Contact,
    Conversation as ConversationRow,
    ConversationParticipant,
    Entity as EntityRow,
    LeadScore,
    Message as MessageRow,
    Reminder,
    User,
)
from ..errors import NotFound
from ..logging import get_logger
from .fulfilment import close_kept_promises
from .scoring import score_contact
from .types import (
    AnalysisResult,
    ContactScore,
    Conversation,
    Entity,
    IntentSignal,
    Message,
    ScoreReason,
    Usage,
)

logger = get_logger(__name__)

#: New messages sent to the analyzer in one call; a huge import takes several.
BATCH_SIZE = 200

#: Earlier, already analysed messages sent along as context, at most.
CONTEXT_SIZE = 20

#: Characters of a message body sent to the analyzer; the rest is cut.
MAX_TEXT_CHARS = 4_000

#: Rows per insert statement, well under SQLite's limit on bound values.
INSERT_BATCH = 500

#: Kind prefix of the entity rows that hold buying signals.
SIGNAL_PREFIX = "signal:"

#: Messages of a conversation that scoring reads, newest first.
SCORING_WINDOW = 500

#: Reason code stored with a score whose contact stated a strong intent.
STRONG_INTENT_CODE = "strong_intent"

_SPACES = re.compile(r"\s+")


@dataclass
class AnalysisOutcome:
    """Counts and usage of one analysis of a conversation.

    Attributes:
      conversation_id: The conversation.
      analyzed: Messages marked analysed.
      calls: Analyzer calls made (one per batch).
      reminders: Reminders created; existing ones are not counted.
      reminders_kept: Open reminders marked done because a new message reports
        the promise was kept.
      entities: Entities and signals created.
      usage: Provider usage of each call, in call order.
      notes: Sentences for run history, such as a fallback to offline rules.
      outbox_ids: Pending outbox items the run queued, to deliver.
    """

    conversation_id: int
    analyzed: int = 0
    calls: int = 0
    reminders: int = 0
    reminders_kept: int = 0
    entities: int = 0
    usage: list[Usage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outbox_ids: list[int] = field(default_factory=list)

    @property
    def cost_usd(self) -> Decimal:
        """The estimated cost of every call, in US dollars."""
        return sum((usage.cost_usd for usage in self.usage), Decimal(0))

    def as_dict(self) -> dict[str, object]:
        """Return the outcome as a JSON-ready mapping for run results."""
        return {
            "conversation_id": self.conversation_id,
            "analyzed": self.analyzed,
            "calls": self.calls,
            "reminders": self.reminders,
            "entities": self.entities,
            "cost_usd": str(self.cost_usd),
        }


#: A function that analyzes one batch and returns the findings.
BatchAnalyzer = Callable[[Conversation, AnalysisOutcome], AnalysisResult]


def reminder_key(source_message_id: int, text: str) -> str:
    """Return the idempotency key of a reminder drafted from a message.

    The text is normalized (case, spacing, final punctuation), so drafting the
    same reminder again finds the first one.

    Examples:
      >>> reminder_key(7, "Send the quote.") == reminder_key(7, "send  the QUOTE")
      True
    """
    normalized = _SPACES.sub(" ", text.casefold()).strip().rstrip(".!?…。 ")
    digest = hashlib.sha256(f"{source_message_id}\n{normalized}".encode()).hexdigest()
    return f"analysis:{source_message_id}:{digest[:32]}"


def find_conversation(user_id: int, conversation_id: int) -> ConversationRow:
    """Return the user's conversation.

    Raises:
      NotFound: The conversation does not exist or belongs to another user.
    """
    row = ConversationRow.get_or_none(
        (ConversationRow.id == conversation_id) & (ConversationRow.user == user_id)
    )
    if row is None:
        raise NotFound(
            "conversation",
            str(conversation_id),
            f"Check the id; it must be a conversation of user {user_id}.",
        )

    return row


def pending_conversation_ids(user_id: int) -> list[int]:
    """Return the user's conversations with messages never analysed, by id."""
    query = (
        MessageRow.select(MessageRow.conversation)
        .where(
            (MessageRow.user == user_id)
            & MessageRow.analyzed_at.is_null()
            & (MessageRow.is_deleted == False)  # noqa: E712 - peewee expression
        )
        .distinct()
        .order_by(MessageRow.conversation)
    )
    return [row.conversation_id for row in query]


def analyze_conversation(
    user_id: int,
    conversation_id: int,
    analyze_batch: BatchAnalyzer,
    *,
    batch_size: int = BATCH_SIZE,
) -> AnalysisOutcome:
    """Analyse the conversation's new messages and store the findings.

    Parameters:
      user_id: The owner of the conversation.
      conversation_id: The conversation.
      analyze_batch: Analyzes one batch; it may raise the analyzer's errors,
        which leave that batch unanalysed and propagate.
      batch_size: New messages per call.

    Returns:
      What was analysed and stored. Batches stored before an error stay stored.

    Raises:
      NotFound: The conversation is not the user's.
    """
    user = User.get_by_id(user_id)
    chat = find_conversation(user_id, conversation_id)
    outcome = AnalysisOutcome(conversation_id)
    while True:
        rows = _pending_messages(chat, batch_size)
        if not rows:
            break

        conversation = Conversation(
            messages=tuple(_message(row, chat) for row in rows),
            time_zone=user.time_zone or "UTC",
            language=(user.locale or "en")[:2].lower(),
            context=tuple(_message(row, chat) for row in _context(chat, rows[0])),
            conversation_id=chat.id,
        )
        result = analyze_batch(conversation, outcome)
        outcome.calls += 1
        _store(user, chat, rows, result, outcome)
        if len(rows) < batch_size:
            break

    logger.info(
        "Analysed %d messages of conversation %s for user %s in %d calls.",
        outcome.analyzed,
        conversation_id,
        user_id,
        outcome.calls,
    )
    return outcome


def _pending_messages(chat: ConversationRow, limit: int) -> list[MessageRow]:
    return list(
        MessageRow.select()
        .where(
            (MessageRow.conversation == chat.id)
            & MessageRow.analyzed_at.is_null()
            & (MessageRow.is_deleted == False)  # noqa: E712 - peewee expression
        )
        .order_by(MessageRow.sent_at, MessageRow.id)
        .limit(limit)
    )


def _context(chat: ConversationRow, first: MessageRow) -> list[MessageRow]:
    earlier = (
        MessageRow.select()
        .where(
            (MessageRow.conversation == chat.id)
            & MessageRow.analyzed_at.is_null(False)
            & (MessageRow.is_deleted == False)  # noqa: E712 - peewee expression
            & (MessageRow.sent_at <= first.sent_at)
            & (MessageRow.id != first.id)
        )
        .order_by(MessageRow.sent_at.desc(), MessageRow.id.desc())
        .limit(CONTEXT_SIZE)
    )
    return list(reversed(list(earlier)))


def _message(row: MessageRow, chat: ConversationRow) -> Message:
    text = row.body or row.subject or ""
    sender = ""
    if row.direction == "inbound":
        sender = _sender_name(row, chat)

    return Message(
        id=row.id,
        sent_at=row.sent_at,
        direction=row.direction if row.direction in ("inbound", "outbound") else "system",
        sender=sender,
        text=text[:MAX_TEXT_CHARS],
    )


def _sender_name(row: MessageRow, chat: ConversationRow) -> str:
    contact_id = row.sender_id or chat.contact_id
    if contact_id is None:
        return ""

    contact = Contact.get_or_none(Contact.id == contact_id)
    return contact.name if contact is not None else ""


def _store(
    user: User,
    chat: ConversationRow,
    rows: Sequence[MessageRow],
    result: AnalysisResult,
    outcome: AnalysisOutcome,
) -> None:
    by_id = {row.id: row for row in rows}
    now = utcnow()
    members = group_members(chat.id) if chat.is_group and result.reminders else []
    database = MessageRow._meta.database
    with database.atomic():
        reminder_rows = [
            {
                "user": user.id,
                "key": reminder_key(draft.source_message_id, draft.text),
                "contact": _reminder_contact(by_id[draft.source_message_id], chat, draft.text, members),
                "conversation": chat.id,
                "source_message": draft.source_message_id,
                "text": draft.text,
                "promised_by": draft.promised_by,
                "due_at": draft.due_at,
                "status": "open",
                "created_at": now,
            }
            for draft in result.reminders
            if draft.source_message_id in by_id
        ]
        outcome.reminders += _insert(Reminder, reminder_rows)
        outcome.reminders_kept += len(close_kept_promises(chat.id, rows))
        fact_rows = [
            *(_entity_row(user, chat, by_id, entity, now) for entity in result.entities),
            *(_signal_row(user, chat, by_id, signal, now) for signal in result.signals),
        ]
        outcome.entities += _insert(
            EntityRow, [row for row in fact_rows if row is not None]
        )
        marked = (
            MessageRow.update(analyzed_at=now)
            .where(MessageRow.id.in_(list(by_id)) & MessageRow.analyzed_at.is_null())
            .execute()
        )
        outcome.analyzed += marked
        newest = max(row.sent_at for row in rows)
        ConversationRow.update(analyzed_until=newest).where(
            (ConversationRow.id == chat.id)
            & (
                ConversationRow.analyzed_until.is_null()
                | (ConversationRow.analyzed_until < newest)
            )
        ).execute()


def _insert(model: type[peewee.Model], rows: list[dict[str, object]]) -> int:
    """Insert rows, ignoring those that conflict; return how many were new."""
    created = 0
    database = model._meta.database
    for start in range(0, len(rows), INSERT_BATCH):
        query = model.insert_many(rows[start : start + INSERT_BATCH])
        created += database.execute(query.on_conflict_ignore()).rowcount

    return created


def _contact_of(row: MessageRow, chat: ConversationRow) -> int | None:
    if row.direction == "inbound" and row.sender_id is not None:
        return row.sender_id

    return chat.contact_id


def _reminder_contact(
    row: MessageRow, chat: ConversationRow, text: str, members: Sequence[tuple[int, str]]
) -> int | None:
    """Return the contact a reminder is about, so erasing that contact deletes it.

    A message the contact sent is about its sender, and any message of a
    one-to-one chat is about the chat's contact.  A message the user sent to
    a group is about the member the reminder's text names.  When the text
    names no member, or several, the contact stays unknown (None).
    """
    if not chat.is_group or (row.direction == "inbound" and row.sender_id is not None):
        return _contact_of(row, chat)

    return addressed_contact(text, members)


def group_members(conversation_id: int) -> list[tuple[int, str]]:
    """Return the ids and names of a conversation's participants, the user excluded."""
    query = (
        Contact.select(Contact.id, Contact.name)
        .join(ConversationParticipant, on=(ConversationParticipant.contact == Contact.id))
        .where(
            (ConversationParticipant.conversation == conversation_id)
            & (Contact.is_self == False)  # noqa: E712 - peewee expression
        )
        .order_by(Contact.id)
    )
    return [(contact_id, name) for contact_id, name in query.tuples() if name and name.strip()]


def addressed_contact(text: str, members: Sequence[tuple[int, str]]) -> int | None:
    """Return the one member whose name ``text`` contains as whole words, else None.

    A name inside a longer matching name ("Ana" in "Ana Souza") does not
    count, so "You promised Ana Souza" finds Ana Souza alone.  Case is
    ignored.
    """
    matches = [
        (contact_id, name.strip())
        for contact_id, name in members
        if re.search(rf"(?<!\w){re.escape(name.strip())}(?!\w)", text, re.IGNORECASE)
    ]
    longest = [
        contact_id
        for contact_id, name in matches
        if not any(name.lower() in other.lower() and name != other for _, other in matches)
    ]
    return longest[0] if len(longest) == 1 else None


def _entity_row(
    user: User,
    chat: ConversationRow,
    by_id: dict[int, MessageRow],
    entity: Entity,
    now: datetime,
) -> dict[str, object] | None:
    if entity.message_id not in by_id:
        return None

    value = entity.value
    if entity.kind == "amount" and entity.currency:
        value = f"{value} {entity.currency}"

    return {
        "user": user.id,
        "message": entity.message_id,
        "contact": _contact_of(by_id[entity.message_id], chat),
        "kind": entity.kind,
        "value": value,
        "created_at": now,
    }


def _signal_row(
    user: User,
    chat: ConversationRow,
    by_id: dict[int, MessageRow],
    signal: IntentSignal,
    now: datetime,
) -> dict[str, object] | None:
    if signal.message_id not in by_id:
        return None

    return {
        "user": user.id,
        "message": signal.message_id,
        "contact": _contact_of(by_id[signal.message_id], chat),
        "kind": f"{SIGNAL_PREFIX}{signal.kind}",
        "value": f"{signal.strength:.2f}",
        "created_at": now,
    }


# Scoring.


@dataclass(frozen=True)
class ScoredContact:
    """One new lead score of a contact.

    Attributes:
      contact_id: The contact.
      lead_score_id: The new :class:`~wallie.db.models.LeadScore` row.
      score: The new score.
      previous: The contact's score before, or ``None`` for a first score.
      crossed: Whether the contact became hot with this score.
    """

    contact_id: int
    lead_score_id: int
    score: int
    previous: int | None
    crossed: bool


def is_hot(score: int, reasons: Sequence[dict[str, object]], threshold: int) -> bool:
    """Return whether a stored score makes its contact a hot lead."""
    if score >= threshold:
        return True

    return any(reason.get("code") == STRONG_INTENT_CODE for reason in reasons)


def scored_contacts(chat: ConversationRow) -> list[int]:
    """Return the contacts a conversation scores: the contact, or each group member.

    The user's own contact (``is_self``) is never scored.
    """
    ids: list[int] = []
    if chat.contact_id is not None:
        ids.append(chat.contact_id)

    if chat.is_group or not ids:
        participants = (
            ConversationParticipant.select(ConversationParticipant.contact)
            .where(ConversationParticipant.conversation == chat.id)
            .order_by(ConversationParticipant.contact)
        )
        ids += [row.contact_id for row in participants if row.contact_id not in ids]

    if not ids:
        return []

    selves = {
        contact.id
        for contact in Contact.select(Contact.id).where(
            Contact.id.in_(ids) & (Contact.is_self == True)  # noqa: E712 - peewee expression
        )
    }
    return [contact_id for contact_id in ids if contact_id not in selves]


def score_conversation(
    user_id: int,
    conversation_id: int,
    threshold: int,
    now: datetime | None = None,
) -> list[ScoredContact]:
    """Score each contact of the conversation and append the scores to the history.

    Parameters:
      user_id: The owner of the conversation.
      conversation_id: The conversation.
      threshold: The hot-lead score, from 1 to 100.
      now: The moment recency is measured from; now by default.

    Returns:
      One new score per contact, with whether the contact became hot.

    Raises:
      NotFound: The conversation is not the user's.
    """
    user = User.get_by_id(user_id)
    chat = find_conversation(user_id, conversation_id)
    now = now or utcnow()
    rows = list(
        MessageRow.select()
        .where(
            (MessageRow.conversation == chat.id)
            & (MessageRow.is_deleted == False)  # noqa: E712 - peewee expression
        )
        .order_by(MessageRow.sent_at.desc(), MessageRow.id.desc())
        .limit(SCORING_WINDOW)
    )
    signals, entities = _stored_facts([row.id for row in rows])
    scored = []
    for contact_id in scored_contacts(chat):
        messages = _messages_of(rows, contact_id, chat)
        score = score_contact(
            messages, signals, now, entities=entities, time_zone=user.time_zone or "UTC"
        )
        scored.append(_append_score(user, chat, contact_id, score, now, threshold))

    return scored


def _messages_of(
    rows: Sequence[MessageRow], contact_id: int, chat: ConversationRow
) -> list[Message]:
    """Return the user's messages and those the contact wrote, oldest first."""
    kept = [
        row
        for row in rows
        if row.direction == "outbound"
        or (row.direction == "inbound" and _wrote(row, contact_id, chat))
    ]
    return [_message(row, chat) for row in reversed(kept)]


def _wrote(row: MessageRow, contact_id: int, chat: ConversationRow) -> bool:
    if row.sender_id is not None:
        return row.sender_id == contact_id

    # Without a sender, an inbound message of a one-to-one chat is the contact's.
    return not chat.is_group and chat.contact_id == contact_id


def _stored_facts(message_ids: list[int]) -> tuple[list[IntentSignal], list[Entity]]:
    signals: list[IntentSignal] = []
    entities: list[Entity] = []
    for start in range(0, len(message_ids), 500):
        batch = message_ids[start : start + 500]
        query = EntityRow.select().where(
            EntityRow.message.in_(batch)
            & (EntityRow.kind.startswith(SIGNAL_PREFIX) | (EntityRow.kind == "amount"))
        )
        for row in query:
            if row.kind.startswith(SIGNAL_PREFIX):
                signals.append(
                    IntentSignal(
                        kind=row.kind[len(SIGNAL_PREFIX) :],
                        strength=float(row.value),
                        message_id=row.message_id,
                    )
                )
            else:
                value, _, currency = row.value.partition(" ")
                entities.append(Entity("amount", value, row.message_id, currency or None))

    return signals, entities


def _append_score(
    user: User,
    chat: ConversationRow,
    contact_id: int,
    score: ContactScore,
    now: datetime,
    threshold: int,
) -> ScoredContact:
    reasons = [reason.as_dict() for reason in score.reasons]
    if score.strong_intent:
        strong = ScoreReason(
            STRONG_INTENT_CODE, 0, "Stated they want to buy, order or sign."
        )
        reasons.insert(0, strong.as_dict())

    database = LeadScore._meta.database
    with database.atomic():
        _lock_contact(contact_id)
        previous = (
            LeadScore.select()
            .where((LeadScore.user == user.id) & (LeadScore.contact == contact_id))
            .order_by(LeadScore.computed_at.desc(), LeadScore.id.desc())
            .first()
        )
        row = LeadScore.create(
            user=user.id,
            contact=contact_id,
            conversation=chat.id,
            score=score.score,
            reasons=reasons,
            computed_at=max(now, previous.computed_at) if previous else now,
        )

    was_hot = previous is not None and is_hot(previous.score, previous.reasons, threshold)
    crossed = is_hot(score.score, reasons, threshold) and not was_hot
    logger.info(
        "Scored contact %s of user %s at %d (lead score %s)%s.",
        contact_id,
        user.id,
        score.score,
        row.id,
        ", a new hot lead" if crossed else "",
    )
    return ScoredContact(
        contact_id=contact_id,
        lead_score_id=row.id,
        score=score.score,
        previous=previous.score if previous is not None else None,
        crossed=crossed,
    )


def _lock_contact(contact_id: int) -> None:
    """Serialize scorings of one contact, so two cannot both report its crossing."""
    database = Contact._meta.database
    if getattr(database, "for_update", False):
        Contact.select(Contact.id).where(Contact.id == contact_id).for_update().first()


def latest_scores(user_id: int) -> list[LeadScore]:
    """Return each scored contact's current score, highest first.

    Each row has its contact joined as ``row.contact``.
    """
    newest = (
        LeadScore.select(peewee.fn.MAX(LeadScore.id))
        .where(LeadScore.user == user_id)
        .group_by(LeadScore.contact)
    )
    return list(
        LeadScore.select(LeadScore, Contact)
        .join(Contact)
        .where(LeadScore.id.in_(newest))
        .order_by(LeadScore.score.desc(), Contact.name, LeadScore.id)
    )


def open_reminders(user_id: int) -> list[Reminder]:
    """Return the user's open and snoozed reminders, soonest first.

    Each row has its contact joined as ``row.contact`` (``None`` without one).
    """
    return list(
        Reminder.select(Reminder, Contact)
        .join(Contact, peewee.JOIN.LEFT_OUTER)
        .where((Reminder.user == user_id) & Reminder.status.in_(("open", "snoozed")))
        .order_by(Reminder.due_at, Reminder.id)
    )
