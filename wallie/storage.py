"""Shared writes of imports and syncs: users, contacts, conversations, messages.

Every channel (WhatsApp, Gmail, Outlook, LinkedIn) stores through these
functions, so contacts are matched the same way everywhere and messages
stay unique by ``(user, channel, external_id)``.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Container, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from peewee import Field, SqliteDatabase

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

#: Rows per transaction of :func:`insert_messages`.
INSERT_BATCH = 500

#: Characters handed to PostgreSQL per COPY data message (1 MiB of text).
COPY_BLOCK = 1 << 20

#: Name prefix of the temporary table that receives COPYs of message rows.
_STAGING = "message_staging"

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


def is_sqlite(database: Any) -> bool:
    """Return True when ``database``, or the database behind its proxy, is SQLite."""
    return isinstance(getattr(database, "obj", database), SqliteDatabase)


@contextmanager
def locked_row(model: Any, row_id: int) -> Iterator[Any]:
    """Open a transaction that holds a write lock on one row, and yield the row.

    The row is None when it does not exist. PostgreSQL locks the row with
    ``SELECT ... FOR UPDATE``. SQLite has no row locks, so there the
    transaction begins ``IMMEDIATE`` and takes the database's write lock.
    """
    database = model._meta.database
    query = model.select().where(model.id == row_id)
    if is_sqlite(database):
        with database.atomic("IMMEDIATE"):
            yield query.first()
        return

    with database.atomic():
        yield query.for_update().first()


def delete_user_if_unused(user_id: int) -> bool:
    """Delete the user unless a row of another table refers to it.

    The user's row is locked before the check. So a row that another
    process writes for the user at the same time either commits before the
    check and keeps the user, or waits and then fails on the missing user.

    Returns:
      Whether the user was deleted.
    """
    with locked_row(User, user_id) as row:
        if row is None:
            return False

        for field in User._meta.backrefs:
            if field.model.select().where(field == user_id).exists():
                logger.info("Kept user %s because %s rows refer to it.", user_id,
                            field.model.__name__)
                return False

        User.delete().where(User.id == user_id).execute()
    return True


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
    if not rows:
        return 0

    now = utcnow()
    keys = set().union(*rows)
    fields = [
        field
        for field in Message._meta.sorted_fields
        if field.name in keys or (field.default is not None and not field.primary_key)
    ]
    values = [_db_values(fields, row, now) for row in rows]
    columns = [field.name for field in fields]
    inserted = 0
    for start in range(0, len(values), INSERT_BATCH):
        count, _ = insert_message_values(columns, values[start : start + INSERT_BATCH])
        inserted += count

    return inserted


def _db_values(
    fields: list[Field], row: dict[str, Any], now: datetime
) -> tuple[Any, ...]:
    values = []
    for field in fields:
        if field.name in row:
            value = row[field.name]
        elif field.name == "created_at":
            value = now
        else:
            value = field.default() if callable(field.default) else field.default
        values.append(field.db_value(value))

    return tuple(values)


def insert_message_values(
    columns: Sequence[str],
    values: Sequence[tuple[Any, ...]],
    *,
    ids_for: Container[str] = frozenset(),
) -> tuple[int, dict[str, int]]:
    """Insert rows of database values in one transaction, skipping stored ones.

    This is the fast path of bulk imports. Each row is a tuple of values as
    the database stores them: ids for foreign keys, naive UTC datetimes and
    JSON text. On PostgreSQL the rows are copied into a temporary table and
    moved with one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``. On
    SQLite they go through one prepared ``INSERT OR IGNORE``.

    Parameters:
      columns: :class:`Message` field names, in the order of each tuple.
        They must include every column that is not nullable, because the
        table has no database defaults (peewee fills them in Python).
      values: The rows.
      ids_for: External ids whose new rows' ids the caller needs.

    Returns:
      How many rows were new, and the id of each new row whose external id
      is in ``ids_for``.
    """
    if not values:
        return 0, {}

    database = Message._meta.database
    fields = [Message._meta.fields[name] for name in columns]
    with database.atomic():
        if is_sqlite(database):
            return _insert_sqlite(database, fields, values, ids_for)
        return _insert_postgres(database, fields, values, ids_for)


def _insert_sqlite(
    database: Any,
    fields: list[Field],
    values: Sequence[tuple[Any, ...]],
    ids_for: Container[str],
) -> tuple[int, dict[str, int]]:
    """Insert with ``executemany``, and one row at a time where an id is needed."""
    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    placeholders = ", ".join("?" * len(fields))
    table = Message._meta.table_name
    sql = f'INSERT OR IGNORE INTO "{table}" ({columns}) VALUES ({placeholders})'
    position = [field.name for field in fields].index("external_id")
    cursor = database.cursor()
    inserted = 0
    ids: dict[str, int] = {}
    start = 0
    for index, row in enumerate(values):
        if row[position] not in ids_for:
            continue

        if index > start:
            cursor.executemany(sql, values[start:index])
            inserted += cursor.rowcount
        cursor.execute(sql, row)
        if cursor.rowcount == 1:
            inserted += 1
            ids[row[position]] = cursor.lastrowid
        start = index + 1

    if start < len(values):
        cursor.executemany(sql, values[start:])
        inserted += cursor.rowcount
    return inserted, ids


def _insert_postgres(
    database: Any,
    fields: list[Field],
    values: Sequence[tuple[Any, ...]],
    ids_for: Container[str],
) -> tuple[int, dict[str, int]]:
    """Copy the rows into the staging table, then move the new ones into ``message``.

    COPY spares the parse and plan of an INSERT with thousands of
    parameters. Moving from 500-row INSERT statements to COPY halved the
    time spent in psycopg2 calls of a 100,000-message WhatsApp import
    (cProfile of the import that ``benchmarks/whatsapp_import.py`` runs).
    """
    table = Message._meta.table_name
    all_columns = ", ".join(
        f'"{field.column_name}"' for field in Message._meta.sorted_fields
        if not field.primary_key
    )
    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    # A pooled connection keeps its temporary table across migrations, so the
    # name carries a checksum of the columns it was made with.
    staging = f"{_STAGING}_{zlib.crc32(all_columns.encode()):08x}"
    cursor = database.cursor()
    # ON COMMIT DELETE ROWS empties the table when the transaction ends, and
    # the DELETE below empties it for a second call in the same transaction.
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS "
        f'AS SELECT {all_columns} FROM "{table}" WITH NO DATA'
    )
    # The csv module writes None and "" alike, as an empty field, which COPY
    # reads as NULL unless the column is in FORCE_NOT_NULL. Every nullable
    # column of ``message`` is a number or a time, so an empty field there
    # can only have been None.
    not_null = ", ".join(f'"{field.column_name}"' for field in fields if not field.null)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(values)
    buffer.seek(0)
    cursor.copy_expert(
        f"COPY {staging} ({columns}) FROM STDIN "
        f"WITH (FORMAT csv, FORCE_NOT_NULL ({not_null}))",
        buffer,
        COPY_BLOCK,
    )
    cursor.execute(
        f"WITH moved AS (DELETE FROM {staging} RETURNING {columns}) "
        f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM moved '
        "ON CONFLICT DO NOTHING RETURNING id, external_id"
    )
    new_rows = cursor.fetchall()
    ids = {
        external_id: row_id for row_id, external_id in new_rows if external_id in ids_for
    }
    return len(new_rows), ids


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
