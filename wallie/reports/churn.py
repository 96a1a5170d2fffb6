"""Client churn detection: clients going quiet get a check-in task, once per episode.

A client is a contact (not the user themself) who has sent the user at
least one message.  A client is at risk when one or more of these hold,
each adding to a risk score from 0 to 100:

- no message either way for more than ``inactive_days`` (+40, and +1 per
  day beyond, up to +30 more);
- the last 30 days had less than half the monthly rate of the 90 days
  before them, which had at least :data:`MIN_PRIOR_MESSAGES` messages (+30);
- the client's last message has been unanswered for more than
  :data:`UNANSWERED_AFTER` (+30).

A risk episode starts at the local date of the client's last message and
ends when the client writes again.  Its task is a
:class:`~wallie.db.models.Reminder` keyed ``churn:{contact_id}:{date}``, so
it is created once per episode however often the check runs, and a
notification with the same key notifies the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import peewee
from peewee import Case, fn

from ..db.fields import utcnow
from ..db.models import Contact, Conversation, Message, Reminder, User
from ..logging import get_logger
from ..notify import add_notification
from ..schedule.local import zone_of
from .windows import as_utc

logger = get_logger(__name__)

#: Length of the recent period compared with the one before it, in days.
RECENT_DAYS = 30
#: Length of the earlier period, in days.
PRIOR_DAYS = 90
#: Messages the earlier period needs before a fall in frequency counts.
MIN_PRIOR_MESSAGES = 6
#: How long the client's last message may wait for a reply.
UNANSWERED_AFTER = timedelta(days=2)


@dataclass(frozen=True)
class ClientActivity:
    """Message counts and times of one client."""

    contact_id: int
    name: str
    last_in: datetime
    last_out: datetime | None
    recent: int
    prior: int


@dataclass(frozen=True)
class ChurnRisk:
    """A client at risk, with the score, the reasons and the episode it belongs to."""

    contact_id: int
    name: str
    score: int
    reasons: tuple[str, ...]
    episode_start: date

    @property
    def key(self) -> str:
        """The key of the episode's task and notification."""
        return f"churn:{self.contact_id}:{self.episode_start.isoformat()}"


def _counts(recent_start: datetime, prior_start: datetime):  # type: ignore[no-untyped-def]
    recent = fn.SUM(Case(None, [(Message.sent_at >= recent_start, 1)], 0))
    prior = fn.SUM(
        Case(None, [((Message.sent_at >= prior_start) & (Message.sent_at < recent_start), 1)], 0)
    )
    return recent, prior


def client_activity(user_id: int, as_of: datetime) -> list[ClientActivity]:
    """Return the activity of every client of ``user_id`` up to ``as_of``."""
    recent_start = as_of - timedelta(days=RECENT_DAYS)
    prior_start = recent_start - timedelta(days=PRIOR_DAYS)
    recent, prior = _counts(recent_start, prior_start)
    chat = (Message.user == user_id) & (Message.sent_at <= as_of) & (Message.is_deleted == False)  # noqa: E712

    inbound = (
        Message.select(Message.sender, Contact.name, fn.MAX(Message.sent_at), recent, prior)
        .join(Contact, on=(Message.sender == Contact.id))
        .where(chat & (Message.direction == "inbound") & (Contact.is_self == False))  # noqa: E712
        .group_by(Message.sender, Contact.name)
        .tuples()
    )
    outbound = (
        Message.select(Conversation.contact, fn.MAX(Message.sent_at), recent, prior)
        .join(Conversation, on=(Message.conversation == Conversation.id))
        .where(chat & (Message.direction == "outbound") & Conversation.contact.is_null(False))
        .group_by(Conversation.contact)
        .tuples()
    )
    sent = {contact_id: (as_utc(last), n_recent, n_prior) for contact_id, last, n_recent, n_prior in outbound}

    clients = []
    for contact_id, name, last_in, n_recent, n_prior in inbound:
        last_out, out_recent, out_prior = sent.get(contact_id, (None, 0, 0))
        clients.append(
            ClientActivity(
                contact_id,
                name,
                as_utc(last_in),
                last_out,
                int(n_recent or 0) + int(out_recent or 0),
                int(n_prior or 0) + int(out_prior or 0),
            )
        )

    return clients


def assess(client: ClientActivity, as_of: datetime, inactive_days: int, zone: str) -> ChurnRisk | None:
    """Return the churn risk of ``client``, or None when nothing points to one."""
    score = 0
    reasons = []
    last = max(client.last_in, client.last_out or client.last_in)
    silent_days = (as_of - last).days
    if silent_days > inactive_days:
        score += 40 + min(30, silent_days - inactive_days)
        reasons.append(f"No message either way for {silent_days} days.")

    prior_rate = client.prior * RECENT_DAYS / PRIOR_DAYS
    if client.prior >= MIN_PRIOR_MESSAGES and client.recent < prior_rate / 2:
        score += 30
        reasons.append(
            f"{client.recent} messages in the last {RECENT_DAYS} days, "
            f"against {prior_rate:.1f} per {RECENT_DAYS} days before."
        )

    unanswered = client.last_out is None or client.last_in > client.last_out
    if unanswered and as_of - client.last_in > UNANSWERED_AFTER:
        score += 30
        waited = (as_of - client.last_in).days
        reasons.append(f"Their last message has waited {waited} days for a reply.")

    if not reasons:
        return None

    episode_start = client.last_in.astimezone(zone_of(zone)).date()
    return ChurnRisk(client.contact_id, client.name, min(score, 100), tuple(reasons), episode_start)


def detect_churn(user: User, inactive_days: int, as_of: datetime | None = None) -> list[ChurnRisk]:
    """Return the user's clients at risk, highest score first."""
    as_of = as_of or utcnow()
    risks = [
        risk
        for client in client_activity(user.id, as_of)
        if (risk := assess(client, as_of, inactive_days, user.time_zone)) is not None
    ]
    return sorted(risks, key=lambda risk: (-risk.score, risk.name))


def record_churn_risks(user_id: int, inactive_days: int, as_of: datetime | None = None) -> list[int]:
    """Create a check-in task and a notification for each new risk episode.

    Returns the ids of the outbox items written, for the caller to deliver.
    """
    as_of = as_of or utcnow()
    user = User.get_or_none(User.id == user_id)
    if user is None:
        return []

    item_ids = []
    for risk in detect_churn(user, inactive_days, as_of):
        item_id = _record(user, risk, as_of)
        if item_id is not None:
            item_ids.append(item_id)

    return item_ids


def _record(user: User, risk: ChurnRisk, as_of: datetime) -> int | None:
    database = Reminder._meta.database
    try:
        with database.atomic():
            # notified_at is set because the notification below tells the
            # user; the hourly reminder check would otherwise tell them again.
            Reminder.create(
                user=user,
                key=risk.key,
                contact=risk.contact_id,
                text=f"Check in with {risk.name}",
                due_at=as_of,
                notified_at=as_of,
            )
            data = {"contact_id": risk.contact_id, "score": risk.score, "reasons": list(risk.reasons)}
            note = add_notification(
                user, risk.key, "churn_risk", f"Check in with {risk.name}", " ".join(risk.reasons), data
            )
    except peewee.IntegrityError:
        return None

    logger.info("Created churn task %s for user %r with score %d.", risk.key, user.id, risk.score)
    return note.id
