"""Builders of stored users, conversations and messages for the analysis job tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from itertools import count

from wallie.db.fields import utcnow
from wallie.db.models import Contact, Conversation, Message, User
from wallie.storage import add_participants, find_or_create_contact, get_or_create_user

_ids = count(1)

#: A buyer's message: a price question, a quantity and an outright purchase.
BUYING = "How much for 200 licenses? We want to buy them this week."

#: The user's promise with a time: the offline rules make a reminder of it.
PROMISE = "I will send the quote tomorrow by 3pm."


@dataclass
class Chat:
    """A stored one-to-one conversation with its owner and contact."""

    user: User
    contact: Contact
    conversation: Conversation

    def say(self, direction: str, body: str, minutes_ago: int = 0) -> Message:
        """Store a message of the chat, sent ``minutes_ago`` before now."""
        return Message.create(
            user=self.user,
            channel=self.conversation.channel,
            external_id=f"m-{next(_ids)}",
            conversation=self.conversation,
            sender=self.contact if direction == "inbound" else None,
            direction=direction,
            sent_at=utcnow() - timedelta(minutes=minutes_ago),
            body=body,
        )


def make_chat(
    email: str = "sam@example.com",
    contact_name: str = "Ana Ruiz",
    time_zone: str = "Europe/Madrid",
) -> Chat:
    """Store a user, a contact and their WhatsApp conversation."""
    user, _ = get_or_create_user(email, name="Sam", time_zone=time_zone)
    contact = find_or_create_contact(user, name=contact_name, phone=f"+3460000{next(_ids):04d}")
    conversation = Conversation.create(
        user=user,
        channel="whatsapp",
        external_id=f"chat-{next(_ids)}",
        title=contact_name,
        contact=contact,
    )
    return Chat(user, contact, conversation)


def buying_chat(**options: str) -> Chat:
    """A chat whose contact asks a price and says they will buy; the user promises."""
    chat = make_chat(**options)
    chat.say("inbound", BUYING, minutes_ago=30)
    chat.say("outbound", PROMISE, minutes_ago=20)
    return chat


def group_chat(user: User, names: tuple[str, ...]) -> tuple[Conversation, list[Contact]]:
    """Store a group conversation of ``user`` with a contact per name and the user's own."""
    conversation = Conversation.create(
        user=user, channel="whatsapp", external_id=f"group-{next(_ids)}", title="Team", is_group=True
    )
    contacts = [find_or_create_contact(user, name=name) for name in names]
    self_contact = find_or_create_contact(user, name="Me", is_self=True)
    add_participants(conversation, [*contacts, self_contact])
    return conversation, contacts
