"""The weekly report: last ISO week against the week before, in the user's time zone.

Metrics per week (local Monday 00:00 to the next Monday 00:00):

- new leads: contacts whose first lead score falls in the week;
- messages received and sent;
- median reply time: from the first unanswered message of a contact to the
  user's next message in the same conversation, for replies in the week;
- reminders kept (due in the week and done) and missed (due in the week,
  already past, and not done);
- conversions: contacts whose score crossed the hot-lead threshold
  (``WALLIE_HOT_LEAD_THRESHOLD``) upwards in the week, or who were scored
  in the week with a stated intent to buy, each counted once;
- top clients: the contacts with the most messages in the week.

Insights are short sentences from fixed rules comparing the two weeks.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from peewee import JOIN, fn

from ..analysis.service import STRONG_INTENT_CODE
from ..db.fields import utcnow
from ..db.models import Contact, Conversation, LeadScore, Message, OutboxItem, Reminder, User
from ..logging import get_logger
from ..notify import MailContent, add_email
from .render import render_mail
from .windows import Window, as_utc, hot_score, local_week, parse_iso_week

logger = get_logger(__name__)


#: Clients listed in the report.
TOP_CLIENTS = 5

#: Relative change (0.2 is 20%) below which the report stays silent.
NOTABLE_CHANGE = 0.2


@dataclass
class WeekMetrics:
    """The numbers of one week."""

    new_leads: int = 0
    received: int = 0
    sent: int = 0
    median_reply: timedelta | None = None
    reminders_kept: int = 0
    reminders_missed: int = 0
    conversions: int = 0
    top_clients: list[tuple[str, int]] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        """True when nothing happened in the week."""
        return not (
            self.new_leads
            or self.received
            or self.sent
            or self.reminders_kept
            or self.reminders_missed
            or self.conversions
        )


@dataclass
class WeeklyReport:
    """One user's report for the ISO week starting on ``monday``."""

    user_id: int
    email: str
    user_name: str
    week: str
    monday: date
    current: WeekMetrics
    previous: WeekMetrics
    insights: list[str]

    @property
    def is_empty(self) -> bool:
        """True when neither week had anything, so no mail is sent."""
        return self.current.is_empty and self.previous.is_empty


def weekly_report_key(user_id: int, week: str) -> str:
    """Return the outbox key of one user's report for ISO week ``week``."""
    return f"weekly-report:{user_id}:{week}"


def week_metrics(user_id: int, window: Window, as_of: datetime) -> WeekMetrics:
    """Compute the metrics of ``user_id`` for ``window``."""
    metrics = WeekMetrics()
    chat = (
        (Message.user == user_id)
        & (Message.sent_at >= window.start)
        & (Message.sent_at < window.end)
        & (Message.is_deleted == False)  # noqa: E712 - peewee expression
    )
    counts = dict(
        Message.select(Message.direction, fn.COUNT(Message.id)).where(chat).group_by(Message.direction).tuples()
    )
    metrics.received = counts.get("inbound", 0)
    metrics.sent = counts.get("outbound", 0)
    metrics.median_reply = _median_reply(user_id, window)
    metrics.new_leads = _new_leads(user_id, window)
    metrics.reminders_kept, metrics.reminders_missed = _reminders(user_id, window, as_of)
    metrics.conversions = _conversions(user_id, window)
    metrics.top_clients = _top_clients(chat)
    return metrics


def _median_reply(user_id: int, window: Window) -> timedelta | None:
    # Read a week before the window too, so a reply early in the week finds
    # the message it answers.
    rows = (
        Message.select(Message.conversation, Message.direction, Message.sent_at)
        .where(
            (Message.user == user_id)
            & (Message.sent_at >= window.start - timedelta(days=7))
            & (Message.sent_at < window.end)
            & Message.direction.in_(("inbound", "outbound"))
            & (Message.is_deleted == False)  # noqa: E712 - peewee expression
        )
        .order_by(Message.conversation, Message.sent_at, Message.id)
        .tuples()
    )
    waits: list[float] = []
    waiting_since: dict[int, datetime] = {}
    for conversation_id, direction, sent_at in rows:
        if direction == "inbound":
            waiting_since.setdefault(conversation_id, sent_at)
            continue

        since = waiting_since.pop(conversation_id, None)
        if since is not None and sent_at >= window.start:
            waits.append((sent_at - since).total_seconds())

    if not waits:
        return None

    return timedelta(seconds=statistics.median(waits))


def _new_leads(user_id: int, window: Window) -> int:
    first = fn.MIN(LeadScore.computed_at)
    query = (
        LeadScore.select(LeadScore.contact, first.alias("first"))
        .where((LeadScore.user == user_id) & (LeadScore.computed_at < window.end))
        .group_by(LeadScore.contact)
        .tuples()
    )
    return sum(1 for _, raw in query if as_utc(raw) >= window.start)


def _reminders(user_id: int, window: Window, as_of: datetime) -> tuple[int, int]:
    rows = (
        Reminder.select(Reminder.status, Reminder.due_at)
        .where((Reminder.user == user_id) & (Reminder.due_at >= window.start) & (Reminder.due_at < window.end))
        .tuples()
    )
    kept = missed = 0
    for status, due_at in rows:
        if status == "done":
            kept += 1
        elif due_at < as_of:
            missed += 1

    return kept, missed


def _conversions(user_id: int, window: Window) -> int:
    scores = (
        LeadScore.select(
            LeadScore.contact, LeadScore.score, LeadScore.computed_at, LeadScore.reasons
        )
        .where((LeadScore.user == user_id) & (LeadScore.computed_at < window.end))
        .order_by(LeadScore.computed_at, LeadScore.id)
        .tuples()
    )
    threshold = hot_score()
    converted: set[int] = set()
    current: dict[int, int] = {}
    for contact_id, score, computed_at, reasons in scores:
        before = current.get(contact_id)
        crossed = before is not None and before < threshold <= score
        stated = any(reason.get("code") == STRONG_INTENT_CODE for reason in reasons)
        if computed_at >= window.start and (crossed or stated):
            converted.add(contact_id)

        current[contact_id] = score

    return len(converted)


def _top_clients(chat) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    rows = (
        Message.select(Contact.name, Conversation.title)
        .join(Conversation, on=(Message.conversation == Conversation.id))
        .join(Contact, JOIN.LEFT_OUTER, on=(Conversation.contact == Contact.id))
        .where(chat & (Conversation.is_group == False) & Message.direction.in_(("inbound", "outbound")))  # noqa: E712
        .tuples()
    )
    counts = Counter(name or title for name, title in rows)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_CLIENTS]


def _change(current: float, previous: float) -> float | None:
    if previous <= 0:
        return None

    return (current - previous) / previous


def insights(current: WeekMetrics, previous: WeekMetrics) -> list[str]:
    """Return short sentences on what changed from ``previous`` to ``current``."""
    lines = []
    if current.median_reply is not None and previous.median_reply is not None:
        change = _change(current.median_reply.total_seconds(), previous.median_reply.total_seconds())
        if change is not None and change >= NOTABLE_CHANGE:
            lines.append(f"Replies took {change:.0%} longer than the week before.")
        elif change is not None and change <= -NOTABLE_CHANGE:
            lines.append(f"Replies were {-change:.0%} faster than the week before.")

    change = _change(current.received, previous.received)
    if change is not None and abs(change) >= NOTABLE_CHANGE:
        word = "more" if change > 0 else "fewer"
        lines.append(f"You received {abs(change):.0%} {word} messages than the week before.")

    if current.new_leads > previous.new_leads:
        lines.append(f"{current.new_leads} new leads, {current.new_leads - previous.new_leads} more than the week before.")

    if current.reminders_missed:
        lines.append(f"{current.reminders_missed} reminder(s) passed their due time without being done.")

    if current.conversions:
        lines.append(f"{current.conversions} conversion(s) this week.")

    return lines


def build_weekly_report(user: User, monday: date, as_of: datetime | None = None) -> WeeklyReport:
    """Build the report of ``user`` for the ISO week starting on ``monday``."""
    as_of = as_of or utcnow()
    current = week_metrics(user.id, local_week(monday, user.time_zone), as_of)
    previous = week_metrics(user.id, local_week(monday - timedelta(days=7), user.time_zone), as_of)
    year, number, _ = monday.isocalendar()
    week = f"{year}-W{number:02d}"
    return WeeklyReport(user.id, user.email, user.name, week, monday, current, previous, insights(current, previous))


def render_weekly_report(report: WeeklyReport) -> MailContent:
    """Render ``report`` as a mail with a text and an HTML part."""
    subject = f"Your Wallie week {report.week}"
    return render_mail("weekly_report", subject, {"report": report, "format_duration": format_duration})


def format_duration(value: timedelta | None) -> str:
    """Return ``value`` as ``2 h 05 min``, ``12 min`` or ``-``."""
    if value is None:
        return "-"

    minutes = int(value.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def queue_weekly_report(user_id: int, week: str, as_of: datetime | None = None) -> OutboxItem | None:
    """Write the report of the ISO week before ``week`` to the outbox, once.

    ``week`` is the ISO week in which the report is sent (the Monday it
    runs); the report covers the full week before it.  Returns the outbox
    item, or None when the user is gone or both weeks are empty.
    """
    key = weekly_report_key(user_id, week)
    existing = OutboxItem.get_or_none(OutboxItem.idempotency_key == key)
    if existing is not None:
        return existing

    user = User.get_or_none(User.id == user_id)
    if user is None:
        return None

    report = build_weekly_report(user, parse_iso_week(week) - timedelta(days=7), as_of)
    if report.is_empty:
        logger.info("Skipped the weekly report of user %r for %s: nothing to tell.", user_id, week)
        return None

    return add_email(user, key, user.email, render_weekly_report(report))
