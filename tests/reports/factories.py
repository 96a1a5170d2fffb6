"""Small builders of users, conversations, messages and scores for report tests."""

from __future__ import annotations

from datetime import datetime
from itertools import count

from wallie.db.models import Contact, Conversation, LeadScore, Message, Reminder, User

_ids = count(1)


def user(email: str = "sam@example.com", time_zone: str = "Europe/Amsterdam", name: str = "Sam") -> User:
    return User.create(email=email, name=name, time_zone=time_zone)


def contact(owner: User, name: str) -> Contact:
    return Contact.create(user=owner, name=name)


def conversation(owner: User, person: Contact, *, is_group: bool = False) -> Conversation:
    return Conversation.create(
        user=owner, channel="whatsapp", external_id=f"chat-{next(_ids)}", title=person.name, contact=person, is_group=is_group
    )


def message(chat: Conversation, direction: str, sent_at: datetime, body: str = "hello", labels: list[str] | None = None) -> Message:
    return Message.create(
        user=chat.user_id,
        channel=chat.channel,
        external_id=f"m-{next(_ids)}",
        conversation=chat,
        sender=chat.contact_id if direction == "inbound" else None,
        direction=direction,
        sent_at=sent_at,
        body=body,
        labels=labels or [],
    )


def reminder(owner: User, text: str, due_at: datetime, **fields: object) -> Reminder:
    return Reminder.create(user=owner, key=f"test:{next(_ids)}", text=text, due_at=due_at, **fields)


def score(owner: User, person: Contact, value: int, computed_at: datetime) -> LeadScore:
    return LeadScore.create(user=owner, contact=person, score=value, computed_at=computed_at)
