"""Rows outside a contact's messages that name the contact, for a contact erasure.

The foreign keys of :mod:`.plan` do not reach these rows:

- Notices about the contact alone: hot-lead items (keys
  ``hot-lead:{contact_id}:...``), churn notices (``churn:{contact_id}:...``),
  in-app notifications whose ``data`` contains the contact's id, and the notices
  of reminders that the erasure deletes.  They are deleted.
- Reminders that the user made in a group chat before reminders got the
  addressed contact: ``contact`` is NULL, but the text names the contact.
  They are deleted.
- Mails and notifications that mention several contacts, such as daily
  summaries and weekly reports.  They are kept and counted as
  ``mentions_left`` in the receipt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..analysis.service import addressed_contact, group_members
from ..db.models import Contact, Conversation, ConversationParticipant, Message, Notification, OutboxItem, Reminder
from ..reports.reminders import reminder_key

#: Outbox key prefixes of notices about one contact, formatted with its id.
CONTACT_KEY_PREFIXES = ("hot-lead:{contact_id}:", "churn:{contact_id}:")

#: Rows read per query while scanning a user's outbox and notifications.
SCAN_BATCH = 1000


@dataclass
class ContactNotices:
    """Rows outside the contact's messages that a contact erasure deletes or keeps.

    Attributes:
      outbox_ids: Outbox items about the contact alone.
      notification_ids: In-app notifications about the contact alone.
      reminder_ids: Group-chat reminders with no contact whose text names it.
      mentions_left: Outbox items and notifications that are kept although
        they name the contact, because they are about several contacts.
    """

    outbox_ids: list[int] = field(default_factory=list)
    notification_ids: list[int] = field(default_factory=list)
    reminder_ids: list[int] = field(default_factory=list)
    mentions_left: int = 0


def find_contact_notices(user_id: int, contact_id: int) -> ContactNotices:
    """Return the rows of ``user_id`` that name contact ``contact_id`` outside its messages."""
    contact = Contact.get_or_none((Contact.id == contact_id) & (Contact.user == user_id))
    notices = ContactNotices(reminder_ids=_unlinked_group_reminders(user_id, contact_id))
    reminders = _erased_reminders(user_id, contact_id) | set(notices.reminder_ids)
    keys = {reminder_key(reminder_id) for reminder_id in reminders}
    keys |= {f"{key}:email" for key in keys}
    prefixes = tuple(prefix.format(contact_id=contact_id) for prefix in CONTACT_KEY_PREFIXES)
    mention = _mention_pattern(contact)

    for item in _scan(OutboxItem, OutboxItem.user == user_id):
        data = (item.payload or {}).get("data") or {}
        key = item.idempotency_key
        if key in keys or key.startswith(prefixes) or _names(data, contact_id, reminders):
            notices.outbox_ids.append(item.id)
        elif mention is not None and mention.search(f"{item.subject}\n{json.dumps(item.payload)}"):
            notices.mentions_left += 1

    for note in _scan(Notification, Notification.user == user_id):
        if _names(note.data or {}, contact_id, reminders):
            notices.notification_ids.append(note.id)
        elif mention is not None and mention.search(f"{note.title}\n{note.body}"):
            notices.mentions_left += 1

    return notices


def _names(data: dict[str, object], contact_id: int, reminders: set[int]) -> bool:
    return data.get("contact_id") == contact_id or data.get("reminder_id") in reminders


def _mention_pattern(contact: Contact | None) -> re.Pattern[str] | None:
    """Return a pattern that finds the contact's name, email or phone as whole words."""
    if contact is None:
        return None

    values = [value.strip() for value in (contact.name, contact.email, contact.phone) if value]
    values = [value for value in values if len(value) >= 3]
    if not values:
        return None

    alternatives = "|".join(re.escape(value) for value in values)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _scan(model: type[OutboxItem] | type[Notification], condition: object) -> Iterable[object]:
    """Yield the rows of ``model`` matching ``condition`` in id order, a batch at a time."""
    last_id = 0
    while True:
        batch = list(
            model.select().where(condition & (model.id > last_id)).order_by(model.id).limit(SCAN_BATCH)
        )
        yield from batch
        if len(batch) < SCAN_BATCH:
            return

        last_id = batch[-1].id


def _erased_reminders(user_id: int, contact_id: int) -> set[int]:
    """Return the reminders the erasure deletes through the contact or its messages."""
    sent = Message.select(Message.id).where((Message.user == user_id) & (Message.sender == contact_id))
    query = Reminder.select(Reminder.id).where(
        (Reminder.user == user_id) & ((Reminder.contact == contact_id) | Reminder.source_message.in_(sent))
    )
    return {row[0] for row in query.tuples()}


def _unlinked_group_reminders(user_id: int, contact_id: int) -> list[int]:
    """Return the group-chat reminders with no contact whose text addresses ``contact_id``."""
    groups = (
        ConversationParticipant.select(ConversationParticipant.conversation)
        .join(Conversation)
        .where(
            (ConversationParticipant.user == user_id)
            & (ConversationParticipant.contact == contact_id)
            & (Conversation.is_group == True)  # noqa: E712 - peewee expression
        )
    )
    found = []
    members: dict[int, list[tuple[int, str]]] = {}
    query = Reminder.select(Reminder.id, Reminder.conversation, Reminder.text).where(
        (Reminder.user == user_id) & Reminder.contact.is_null() & Reminder.conversation.in_(groups)
    )
    for reminder_id, conversation_id, text in query.tuples():
        if conversation_id not in members:
            members[conversation_id] = group_members(conversation_id)

        if addressed_contact(text, members[conversation_id]) == contact_id:
            found.append(reminder_id)

    return sorted(found)
