"""Notify the user of reminders that are due: in the app and by mail, once each.

:func:`notify_due_reminders` picks every reminder that is due, open (or
snoozed until a time that has passed) and not yet notified, however late
the check runs, so an hour the checker missed loses nothing.  Each reminder
is marked with a conditional update (``notified_at IS NULL``) in the same
transaction as its outbox items (keys ``reminder:{id}`` and
``reminder:{id}:email``), so a reminder is either marked and queued, or
neither, and two concurrent checks cannot both notify it.
"""

from __future__ import annotations

from datetime import datetime

from peewee import JOIN

from ..db.fields import utcnow
from ..db.models import Contact, Reminder, User
from ..logging import get_logger
from ..notify import add_email, add_notification
from .render import render_mail

logger = get_logger(__name__)

#: Reminders read per query.
REMINDER_BATCH = 500


def reminder_key(reminder_id: int) -> str:
    """Return the outbox key of a reminder's in-app notification."""
    return f"reminder:{reminder_id}"


def _due(now: datetime):  # type: ignore[no-untyped-def] - a peewee expression
    active = (Reminder.status == "open") | (
        (Reminder.status == "snoozed") & (Reminder.snoozed_until <= now)
    )
    return (Reminder.due_at <= now) & Reminder.notified_at.is_null() & active


def notify_due_reminders(now: datetime | None = None) -> list[int]:
    """Mark every due reminder notified and queue its notification and mail.

    Returns the ids of the outbox items written, for the caller to deliver.
    """
    now = now or utcnow()
    item_ids: list[int] = []
    last_id = 0
    while True:
        batch = list(
            Reminder.select(Reminder, User, Contact)
            .join(User, on=(Reminder.user == User.id))
            .switch(Reminder)
            .join(Contact, JOIN.LEFT_OUTER, on=(Reminder.contact == Contact.id))
            .where(_due(now) & (Reminder.id > last_id))
            .order_by(Reminder.id)
            .limit(REMINDER_BATCH)
        )
        if not batch:
            break

        for reminder in batch:
            item_ids += notify_reminder(reminder, now)

        last_id = batch[-1].id

    if item_ids:
        logger.info("Queued %d reminder notices at %s.", len(item_ids), now.isoformat())

    return item_ids


def notify_reminder(reminder: Reminder, now: datetime) -> list[int]:
    """Mark ``reminder`` notified and queue its notices; [] if already notified."""
    user = reminder.user
    contact = reminder.contact.name if reminder.contact_id else ""
    key = reminder_key(reminder.id)
    context = {"reminder": reminder, "contact": contact, "time_zone": user.time_zone}
    database = Reminder._meta.database
    with database.atomic():
        marked = (
            Reminder.update(notified_at=now)
            .where((Reminder.id == reminder.id) & Reminder.notified_at.is_null())
            .execute()
        )
        if marked != 1:
            return []

        data = {"reminder_id": reminder.id, "contact_id": reminder.contact_id}
        note = add_notification(user, key, "reminder", reminder.text, contact, data)
        mail = render_mail("reminder", f"Reminder: {_shorten(reminder.text)}", context)
        email = add_email(user, f"{key}:email", user.email, mail)

    return [note.id, email.id]


def _shorten(text: str, limit: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else f"{line[: limit - 1]}…"
