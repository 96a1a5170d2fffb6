from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import peewee
import pytest

from wallie.db.models import (
    Contact,
    Conversation,
    Message,
    OutboxItem,
    Reminder,
    User,
)


def _conversation(user: User) -> Conversation:
    return Conversation.create(user=user, channel="whatsapp", external_id="chat-1", title="Ana")


def test_message_is_unique_by_user_channel_and_external_id(db: peewee.Database) -> None:
    user = User.create(email="sam@example.com")
    conversation = _conversation(user)
    fields = {"user": user, "channel": "whatsapp", "conversation": conversation,
              "direction": "inbound", "sent_at": datetime.now(UTC)}
    Message.create(external_id="m-1", **fields)

    with pytest.raises(peewee.IntegrityError), db.atomic():
        Message.create(external_id="m-1", **fields)

    assert Message.select().count() == 1


def test_same_external_id_is_allowed_for_another_user(db: peewee.Database) -> None:
    first = User.create(email="a@example.com")
    second = User.create(email="b@example.com")
    for user in (first, second):
        Message.create(user=user, channel="gmail", external_id="same", conversation=_conversation(user),
                       direction="inbound", sent_at=datetime.now(UTC))

    assert Message.select().count() == 2


def test_outbox_key_is_unique(db: peewee.Database) -> None:
    OutboxItem.create(idempotency_key="hot-lead:1:2", kind="email")

    with pytest.raises(peewee.IntegrityError), db.atomic():
        OutboxItem.create(idempotency_key="hot-lead:1:2", kind="email")


def test_times_come_back_as_aware_utc(db: peewee.Database) -> None:
    user = User.create(email="sam@example.com")
    amsterdam = timezone(timedelta(hours=1))
    due = datetime(2026, 3, 29, 9, 30, tzinfo=amsterdam)
    Reminder.create(user=user, key="r1", text="Send the quote", due_at=due)

    stored = Reminder.get(Reminder.key == "r1").due_at

    assert stored == due
    assert stored.tzinfo == UTC
    assert stored.hour == 8


def test_json_fields_round_trip(db: peewee.Database) -> None:
    OutboxItem.create(idempotency_key="k", kind="webhook", payload={"score": 91, "reasons": ["price"]})

    assert OutboxItem.get().payload == {"score": 91, "reasons": ["price"]}


def test_deleting_a_user_cascades_to_their_rows(db: peewee.Database) -> None:
    user = User.create(email="sam@example.com")
    other = User.create(email="kim@example.com")
    for owner in (user, other):
        contact = Contact.create(user=owner, name="Ana")
        conversation = _conversation(owner)
        Message.create(user=owner, channel="whatsapp", external_id="m", conversation=conversation,
                       sender=contact, direction="inbound", sent_at=datetime.now(UTC))

    user.delete_instance()

    assert Message.select().count() == 1
    assert Contact.select().count() == 1
    assert Message.get().user_id == other.id


def test_deleted_user_id_is_never_reused(db: peewee.Database) -> None:
    User.create(email="first@example.com")
    newest = User.create(email="second@example.com")
    newest.delete_instance()

    third = User.create(email="third@example.com")

    assert third.id > newest.id
