from __future__ import annotations

from datetime import UTC, datetime, timedelta

import peewee

from wallie.db.models import Contact, ContactHandle, Conversation, Message
from wallie.storage import (
    find_or_create_contact,
    get_or_create_user,
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
