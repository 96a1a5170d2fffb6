from __future__ import annotations

from datetime import UTC, datetime, timedelta

import peewee
import pytest

from wallie.db.models import Contact, ContactHandle, Conversation, Message
from wallie.storage import (
    find_or_create_contact,
    get_or_create_user,
    insert_message_values,
    insert_messages,
    touch_conversation,
    upsert_conversation,
)


def test_user_is_created_once(db: peewee.Database) -> None:
    first, created = get_or_create_user("Sam@Example.com", name="Sam")
    again, created_again = get_or_create_user("sam@example.com")

    assert created
    assert not created_again
    assert first.id == again.id
    assert again.email == "sam@example.com"


def test_contact_found_by_phone_gains_the_email_handle(db: peewee.Database) -> None:
    user, _ = get_or_create_user("sam@example.com")
    ana = find_or_create_contact(user, name="Ana", phone="+447700900123")

    same = find_or_create_contact(user, name="Ana Souza", phone="+447700900123", email="Ana@Example.org")
    by_email = find_or_create_contact(user, email="ana@example.org", match_name=False)

    assert same.id == ana.id == by_email.id
    assert Contact.select().count() == 1
    assert Contact.get().email == "ana@example.org"
    kinds = sorted(handle.kind for handle in ContactHandle.select())
    assert kinds == ["email", "name", "name", "phone"]


def test_contacts_of_different_users_never_match(db: peewee.Database) -> None:
    sam, _ = get_or_create_user("sam@example.com")
    kim, _ = get_or_create_user("kim@example.com")

    first = find_or_create_contact(sam, name="Ana", phone="+447700900123")
    second = find_or_create_contact(kim, name="Ana", phone="+447700900123")

    assert first.id != second.id


def test_messages_are_inserted_once_and_counted(db: peewee.Database) -> None:
    user, _ = get_or_create_user("sam@example.com")
    conversation = upsert_conversation(user, "whatsapp", "chat-1", title="Ana")
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    rows = [
        {"user": user, "channel": "whatsapp", "external_id": f"m{index}", "conversation": conversation,
         "direction": "inbound", "sent_at": start + timedelta(minutes=index), "body": f"message {index}"}
        for index in range(1200)
    ]

    first = insert_messages(rows)
    second = insert_messages(rows[1000:] + [{**rows[0], "external_id": "new"}])

    assert first == 1200
    assert second == 1
    assert Message.select().count() == 1201
    assert touch_conversation(conversation.id) == start + timedelta(minutes=1199)
    assert Conversation.get_by_id(conversation.id).last_message_at == start + timedelta(minutes=1199)


def test_conversation_upsert_returns_the_existing_row(db: peewee.Database) -> None:
    user, _ = get_or_create_user("sam@example.com")

    first = upsert_conversation(user, "gmail", "thread-9", title="Quote")
    second = upsert_conversation(user, "gmail", "thread-9", title="Re: Quote")

    assert first.id == second.id
    assert Conversation.select().count() == 1


def test_message_values_keep_text(db: peewee.Database) -> None:
    # Given rows whose bodies hold what CSV and COPY treat specially
    user, _ = get_or_create_user("sam@example.com")
    conversation = upsert_conversation(user, "whatsapp", "chat-1", title="Ana")
    columns = ("user", "channel", "external_id", "conversation", "sender", "direction",
               "sent_at", "subject", "body", "is_deleted", "is_edited", "labels",
               "created_at")
    bodies = ["", 'a "quoted", comma', "two\nlines\r\n", "back\\slash\ttab", "\\.",
              "ünïcode ✓", "NULL"]
    start = datetime(2026, 12, 1, 9, 0)
    values = [
        (user.id, "whatsapp", f"m{index}", conversation.id, None, "inbound",
         start + timedelta(minutes=index), "", body, False, index % 2 == 0, "[]", start)
        for index, body in enumerate(bodies)
    ]
    extra = (*values[0][:2], "m99", *values[0][3:])

    # When they are inserted, then inserted again with one new row
    first, first_ids = insert_message_values(columns, values,
                                             ids_for={"m1", "m3", "m42"})
    second, second_ids = insert_message_values(columns, [*values, extra],
                                               ids_for={"m1", "m99"})

    # Then each row is stored once, ids come back only for new requested rows
    assert first == len(bodies)
    assert first_ids == {
        "m1": Message.get(Message.external_id == "m1").id,
        "m3": Message.get(Message.external_id == "m3").id,
    }
    assert second == 1
    assert second_ids == {"m99": Message.get(Message.external_id == "m99").id}
    stored = {message.external_id: message for message in Message.select()}
    assert [stored[f"m{index}"].body for index in range(len(bodies))] == bodies
    assert stored["m0"].sender_id is None
    assert stored["m0"].subject == ""
    assert stored["m0"].is_edited is True
    assert stored["m1"].is_edited is False
    assert stored["m2"].sent_at == datetime(2026, 12, 1, 9, 2, tzinfo=UTC)
    assert stored["m2"].labels == []


def test_message_values_join_caller_transaction(db: peewee.Database) -> None:
    user, _ = get_or_create_user("sam@example.com")
    conversation = upsert_conversation(user, "whatsapp", "chat-1", title="Ana")
    columns = ("user", "channel", "external_id", "conversation", "direction", "sent_at",
               "subject", "body", "is_deleted", "is_edited", "labels", "created_at")
    now = datetime(2026, 12, 1, 9, 0)
    row = (user.id, "whatsapp", "m1", conversation.id, "inbound", now, "", "hi", False,
           False, "[]", now)

    with pytest.raises(RuntimeError, match="rolled back"), db.atomic():
        insert_message_values(columns, [row])
        insert_message_values(columns, [(*row[:2], "m2", *row[3:])])
        raise RuntimeError("rolled back")

    assert Message.select().count() == 0
    assert insert_message_values(columns, [row]) == (1, {})
