"""Shared writes of imports and syncs: users, contacts, conversations, messages.

Every channel (WhatsApp, Gmail, Outlook, LinkedIn) stores through these
functions, so contacts are matched the same way everywhere and messages
stay unique by ``(user, channel, external_id)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from peewee import SqliteDatabase

from .db.fields import utcnow
from .db.models import (
    Contact,
    ContactHandle,
    Conversation,
    ConversationParticipant,
    Message,
    User,
)
from .logging import get_logger

logger = get_logger(__name__)

#: Rows per INSERT when storing messages; below SQLite's limit of 32,766
#: bound parameters for the widest message row.
INSERT_BATCH = 500

#: Kinds of contact handles, from the most to the least reliable match.
HANDLE_KINDS = ("phone", "email", "name")


def normalise_email(address: str) -> str:
    """Return ``address`` trimmed and lower-cased, as stored in handles."""
    return address.strip().lower()


def get_or_create_user(
    email: str, *, name: str = "", time_zone: str = "UTC", locale: str = "en"
) -> tuple[User, bool]:
    """Return the user with ``email``, creating it if missing, and whether it was created."""
    address = normalise_email(email)
    existing = User.get_or_none(User.email == address)
    if existing is not None:
        return existing, False

    inserted = (
        User.insert(
            email=address, name=name, time_zone=time_zone, locale=locale, created_at=utcnow()
        )
        .on_conflict_ignore()
        .as_rowcount()
        .execute()
    )
    return User.get(User.email == address), inserted == 1


def find_contact(user: User, *, phone: str | None = None, email: str | None = None,
                 name: str | None = None) -> Contact | None:
    """Return the user's contact reachable by ``phone``, ``email`` or ``name``, in that order."""
    for kind, value in (("phone", phone), ("email", email), ("name", name)):
        if not value:
            continue

        if kind == "email":
            value = normalise_email(value)

        handle = (
            ContactHandle.select(ContactHandle.contact)
            .where(
                (ContactHandle.user == user)
                & (ContactHandle.kind == kind)
                & (ContactHandle.value == value)
            )
            .first()
        )
        if handle is not None:
            return Contact.get_by_id(handle.contact_id)

    return None


def find_or_create_contact(
    user: User,
    *,
    name: str = "",
    phone: str | None = None,
    email: str | None = None,
    company: str = "",
    is_self: bool = False,
    match_name: bool = True,
) -> Contact:
    """Return the user's contact for these details, creating it when none matches.

    A match by phone number or email wins over a match by name.  The found
    contact gains any handle it lacked, so a later import finds it by that
    handle too.  ``match_name=False`` keeps names from matching (for
    channels where a display name says little, such as mail).
    """
    contact = find_contact(
        user, phone=phone, email=email, name=name if match_name else None
    )
    if contact is None:
        contact = Contact.create(
            user=user,
            name=name,
            phone=phone,
            email=normalise_email(email) if email else None,
            company=company,
            is_self=is_self,
        )
    else:
        _fill_missing(contact, name=name, phone=phone, email=email, is_self=is_self)

    _add_handles(user, contact, phone=phone, email=email, name=name if match_name else None)
    return contact


def _fill_missing(contact: Contact, *, name: str, phone: str | None, email: str | None,
                  is_self: bool) -> None:
    changes: dict[str, Any] = {}
    if name and not contact.name:
        changes["name"] = name

    if phone and not contact.phone:
        changes["phone"] = phone

    if email and not contact.email:
        changes["email"] = normalise_email(email)

    if is_self and not contact.is_self:
        changes["is_self"] = True

    if changes:
        changes["updated_at"] = utcnow()
        Contact.update(**changes).where(Contact.id == contact.id).execute()
        for key, value in changes.items():
            setattr(contact, key, value)


def _add_handles(user: User, contact: Contact, *, phone: str | None, email: str | None,
                 name: str | None) -> None:
    rows = [
        {"user": user, "contact": contact, "kind": kind, "value": value}
        for kind, value in (
            ("phone", phone),
            ("email", normalise_email(email) if email else None),
            ("name", name),
        )
        if value
    ]
    if rows:
        ContactHandle.insert_many(rows).on_conflict_ignore().execute()


def upsert_conversation(
    user: User,
    channel: str,
    external_id: str,
    *,
    title: str = "",
    is_group: bool = False,
    contact: Contact | None = None,
) -> Conversation:
    """Return the conversation ``(user, channel, external_id)``, creating it if missing."""
    Conversation.insert(
        user=user,
        channel=channel,
        external_id=external_id,
        title=title,
        is_group=is_group,
        contact=contact,
        created_at=utcnow(),
    ).on_conflict_ignore().execute()
    conversation = Conversation.get(
        (Conversation.user == user)
        & (Conversation.channel == channel)
        & (Conversation.external_id == external_id)
    )
    if contact is not None and conversation.contact_id is None and not is_group:
        conversation.contact = contact
        conversation.save(only=[Conversation.contact])

    return conversation


def add_participants(conversation: Conversation, contacts: Iterable[Contact]) -> None:
    """Record ``contacts`` as taking part in ``conversation``; repeats are ignored."""
    rows = [
        {"user": conversation.user_id, "conversation": conversation, "contact": contact}
        for contact in contacts
    ]
    if rows:
        ConversationParticipant.insert_many(rows).on_conflict_ignore().execute()


def insert_messages(rows: Sequence[dict[str, Any]]) -> int:
    """Insert message rows, skipping those already stored; return how many were new.

    Each row holds :class:`~wallie.db.models.Message` columns, at least
    ``user``, ``channel``, ``external_id``, ``conversation``, ``direction``
    and ``sent_at``.  Rows are written in batches of :data:`INSERT_BATCH`,
    each in one transaction.
    """
    inserted = 0
    now = utcnow()
    database = Message._meta.database
    for start in range(0, len(rows), INSERT_BATCH):
        batch = [{"created_at": now, **row} for row in rows[start : start + INSERT_BATCH]]
        with database.atomic():
            inserted += _insert_ignoring(database, batch)

    return inserted


def _insert_ignoring(database: Any, batch: list[dict[str, Any]]) -> int:
    """Insert ``batch`` with one statement that skips rows already stored.

    Same rows and conflict handling as peewee's ``insert_many(...)
    .on_conflict_ignore()``, but the SQL is built here: peewee's query
    builder took most of the time of a large WhatsApp import.
    """
    keys = set().union(*batch)
    fields = [
        field
        for field in Message._meta.sorted_fields
        if field.name in keys or (field.default is not None and not field.primary_key)
    ]
    params: list[Any] = []
    for row in batch:
        for field in fields:
            value = row[field.name] if field.name in row else field.default
            if callable(value) and field.name not in row:
                value = value()
            params.append(field.db_value(value))

    opening, closing = database.quote
    placeholder = "(" + ", ".join([database.param] * len(fields)) + ")"
    columns = ", ".join(f"{opening}{field.column_name}{closing}" for field in fields)
    table = f"{opening}{Message._meta.table_name}{closing}"
    values = ", ".join([placeholder] * len(batch))
    if isinstance(getattr(database, "obj", database), SqliteDatabase):
        sql = f"INSERT OR IGNORE INTO {table} ({columns}) VALUES {values}"
    else:
        sql = f"INSERT INTO {table} ({columns}) VALUES {values} ON CONFLICT DO NOTHING"
    return database.execute_sql(sql, params).rowcount


def touch_conversation(conversation_id: int) -> datetime | None:
    """Set the conversation's ``last_message_at`` from its newest message and return it."""
    row = (
        Message.select(Message.sent_at)
        .where(Message.conversation == conversation_id)
        .order_by(Message.sent_at.desc())
        .first()
    )
    newest = row.sent_at if row is not None else None
    if newest is not None:
        Conversation.update(last_message_at=newest).where(
            Conversation.id == conversation_id
        ).execute()

    return newest
