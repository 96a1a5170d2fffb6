"""The daily summary: yesterday's activity and what needs the salesperson today.

A summary covers the user's local day before ``local_date`` for activity
(messages in and out, lead scores) and ``local_date`` itself for reminders
(due today, or overdue from before it).  Follow-ups are 1:1 conversations
of the last :data:`FOLLOW_UP_LOOKBACK_DAYS` days where the contact wrote
last.  A summary with nothing in it is not sent.

:func:`build_daily_summaries` builds many summaries with a fixed number of
queries per batch of :data:`QUERY_BATCH` users that share a time zone and
date, so generating every user's summary is not one query per user.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from peewee import JOIN, Case, fn

from ..db.fields import utcnow
from ..db.models import Contact, Conversation, LeadScore, Message, OutboxItem, Reminder, User
from ..logging import get_logger
from ..notify import MailContent, add_email
from .render import render_mail
from .windows import as_utc, hot_score, chunks, local_day

logger = get_logger(__name__)

#: Users per batch of queries; keeps ``IN (...)`` lists short on SQLite.
QUERY_BATCH = 500

#: How far back a conversation waiting for the user's reply is looked for, in days.
FOLLOW_UP_LOOKBACK_DAYS = 14

#: Lines per section in the mail; the rest are counted.
MAX_LINES = 10

_CHAT_DIRECTIONS = ("inbound", "outbound")


@dataclass(frozen=True)
class ReminderLine:
    """A reminder due today or overdue."""

    text: str
    due_at: datetime
    contact: str


@dataclass(frozen=True)
class FollowUp:
    """A conversation whose contact wrote last and got no reply yet."""

    name: str
    channel: str
    waiting_since: datetime


@dataclass(frozen=True)
class LeadLine:
    """A lead scored yesterday: new, or hot, with its change since the day before."""

    name: str
    score: int
    change: int | None

    @property
    def is_new(self) -> bool:
        """True when the lead had no score before yesterday."""
        return self.change is None

    @property
    def is_hot(self) -> bool:
        """True when the score is at least the hot-lead threshold."""
        return self.score >= hot_score()


@dataclass
class DailySummary:
    """Everything one user's summary for ``local_date`` shows."""

    user_id: int
    email: str
    user_name: str
    time_zone: str
    local_date: date
    messages_in: int = 0
    messages_out: int = 0
    due_today: list[ReminderLine] = field(default_factory=list)
    overdue: list[ReminderLine] = field(default_factory=list)
    follow_ups: list[FollowUp] = field(default_factory=list)
    leads: list[LeadLine] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        """True when there is nothing to tell, so no mail is sent."""
        return not (
            self.messages_in
            or self.messages_out
            or self.due_today
            or self.overdue
            or self.follow_ups
            or self.leads
        )


def daily_summary_key(user_id: int, local_date: date) -> str:
    """Return the outbox key of one user's summary for one local date."""
    return f"daily-summary:{user_id}:{local_date.isoformat()}"


def build_daily_summaries(
    requests: Sequence[tuple[User, date]], as_of: datetime | None = None
) -> dict[int, DailySummary]:
    """Build the summary of each ``(user, local date)`` in ``requests``, by user id.

    Parameters:
      requests: Users with the local date of their summary.
      as_of: The time the summaries describe; follow-ups and snoozes are
        judged at this time.  Defaults to now.
    """
    as_of = as_of or utcnow()
    groups: dict[tuple[str, date], list[User]] = defaultdict(list)
    for user, local_date in requests:
        groups[(user.time_zone, local_date)].append(user)

    summaries: dict[int, DailySummary] = {}
    for (zone_name, local_date), users in groups.items():
        for batch in chunks(users, QUERY_BATCH):
            summaries.update(_build_batch(batch, zone_name, local_date, as_of))

    return summaries


def _build_batch(
    users: list[User], zone_name: str, local_date: date, as_of: datetime
) -> dict[int, DailySummary]:
    today = local_day(local_date, zone_name)
    yesterday = local_day(local_date - timedelta(days=1), zone_name)
    summaries = {
        user.id: DailySummary(user.id, user.email, user.name, zone_name, local_date) for user in users
    }
    ids = list(summaries)
    _add_message_counts(summaries, ids, yesterday.start, yesterday.end)
    _add_reminders(summaries, ids, today.start, today.end, as_of)
    _add_follow_ups(summaries, ids, min(as_of, today.end))
    _add_leads(summaries, ids, yesterday.start, yesterday.end)
    return summaries


def _add_message_counts(
    summaries: dict[int, DailySummary], ids: list[int], start: datetime, end: datetime
) -> None:
    query = (
        Message.select(Message.user, Message.direction, fn.COUNT(Message.id))
        .where(
            Message.user.in_(ids)
            & (Message.sent_at >= start)
            & (Message.sent_at < end)
            & Message.direction.in_(_CHAT_DIRECTIONS)
            & (Message.is_deleted == False)  # noqa: E712 - peewee expression
        )
        .group_by(Message.user, Message.direction)
        .tuples()
    )
    for user_id, direction, count in query:
        if direction == "inbound":
            summaries[user_id].messages_in = count
        else:
            summaries[user_id].messages_out = count


def _add_reminders(
    summaries: dict[int, DailySummary],
    ids: list[int],
    today_start: datetime,
    today_end: datetime,
    as_of: datetime,
) -> None:
    active = (Reminder.status == "open") | (
        (Reminder.status == "snoozed") & (Reminder.snoozed_until <= as_of)
    )
    query = (
        Reminder.select(Reminder.user, Reminder.text, Reminder.due_at, Contact.name)
        .join(Contact, JOIN.LEFT_OUTER, on=(Reminder.contact == Contact.id))
        .where(Reminder.user.in_(ids) & (Reminder.due_at < today_end) & active)
        .order_by(Reminder.due_at, Reminder.id)
        .tuples()
    )
    for user_id, text, due_at, contact_name in query:
        line = ReminderLine(text, due_at, contact_name or "")
        summary = summaries[user_id]
        if due_at < today_start:
            summary.overdue.append(line)
        else:
            summary.due_today.append(line)


def _add_follow_ups(summaries: dict[int, DailySummary], ids: list[int], cut: datetime) -> None:
    last_in = fn.MAX(Case(None, [(Message.direction == "inbound", Message.sent_at)], None))
    last_out = fn.MAX(Case(None, [(Message.direction == "outbound", Message.sent_at)], None))
    query = (
        Message.select(Message.user, Message.conversation, last_in, last_out)
        .where(
            Message.user.in_(ids)
            & (Message.sent_at >= cut - timedelta(days=FOLLOW_UP_LOOKBACK_DAYS))
            & (Message.sent_at < cut)
            & Message.direction.in_(_CHAT_DIRECTIONS)
            & (Message.is_deleted == False)  # noqa: E712 - peewee expression
        )
        .group_by(Message.user, Message.conversation)
        .tuples()
    )
    waiting: dict[int, tuple[int, datetime]] = {}
    for user_id, conversation_id, raw_in, raw_out in query:
        inbound, outbound = as_utc(raw_in), as_utc(raw_out)
        if inbound is not None and (outbound is None or inbound > outbound):
            waiting[conversation_id] = (user_id, inbound)

    if not waiting:
        return

    details = (
        Conversation.select(Conversation.id, Conversation.title, Conversation.channel, Contact.name)
        .join(Contact, JOIN.LEFT_OUTER, on=(Conversation.contact == Contact.id))
        .where(Conversation.id.in_(list(waiting)) & (Conversation.is_group == False))  # noqa: E712
        .tuples()
    )
    for conversation_id, title, channel, contact_name in details:
        user_id, since = waiting[conversation_id]
        summaries[user_id].follow_ups.append(FollowUp(contact_name or title, channel, since))

    for summary in summaries.values():
        summary.follow_ups.sort(key=lambda follow_up: follow_up.waiting_since)


def _add_leads(
    summaries: dict[int, DailySummary], ids: list[int], start: datetime, end: datetime
) -> None:
    recent = (
        LeadScore.select(LeadScore.user, LeadScore.contact, LeadScore.score, Contact.name)
        .join(Contact, on=(LeadScore.contact == Contact.id))
        .where(LeadScore.user.in_(ids) & (LeadScore.computed_at >= start) & (LeadScore.computed_at < end))
        .order_by(LeadScore.computed_at, LeadScore.id)
        .tuples()
    )
    latest: dict[int, tuple[int, int, str]] = {}
    for user_id, contact_id, score, name in recent:
        latest[contact_id] = (user_id, score, name)

    if not latest:
        return

    before: dict[int, int] = {}
    for batch in chunks(list(latest), QUERY_BATCH):
        earlier = (
            LeadScore.select(LeadScore.contact, LeadScore.score)
            .where(LeadScore.contact.in_(batch) & (LeadScore.computed_at < start))
            .order_by(LeadScore.computed_at, LeadScore.id)
            .tuples()
        )
        before.update(dict(earlier))

    for contact_id, (user_id, score, name) in latest.items():
        previous = before.get(contact_id)
        line = LeadLine(name, score, None if previous is None else score - previous)
        if line.is_new or line.is_hot:
            summaries[user_id].leads.append(line)

    for summary in summaries.values():
        summary.leads.sort(key=lambda lead: (-lead.score, lead.name))


def render_daily_summary(summary: DailySummary) -> MailContent:
    """Render ``summary`` as a mail with a text and an HTML part."""
    subject = f"Your Wallie summary for {summary.local_date.strftime('%A %d %B')}"
    context = {"summary": summary, "max_lines": MAX_LINES}
    return render_mail("daily_summary", subject, context)


def preview_daily_summary(user: User, local_date: date, as_of: datetime | None = None) -> DailySummary:
    """Build one user's summary without sending anything."""
    return build_daily_summaries([(user, local_date)], as_of)[user.id]


def queue_daily_summary(
    user_id: int, local_date: date, as_of: datetime | None = None
) -> OutboxItem | None:
    """Write the user's summary for ``local_date`` to the outbox, once.

    Returns the outbox item (the existing one when the summary was already
    queued), or None when the user is gone or the summary is empty.
    """
    key = daily_summary_key(user_id, local_date)
    existing = OutboxItem.get_or_none(OutboxItem.idempotency_key == key)
    if existing is not None:
        return existing

    user = User.get_or_none(User.id == user_id)
    if user is None:
        logger.info("Skipped the daily summary of user %r: the user no longer exists.", user_id)
        return None

    summary = preview_daily_summary(user, local_date, as_of)
    if summary.is_empty:
        logger.info("Skipped the daily summary of user %r for %s: nothing to tell.", user_id, local_date)
        return None

    return add_email(user, key, user.email, render_daily_summary(summary))


