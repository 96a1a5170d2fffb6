"""Conversation analysis and scoring on the database, with a loopback OpenAI server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import dramatiq
import peewee
import pytest

from wallie.analysis import OfflineAnalyzer
from wallie.analysis.errors import ProviderQuotaExhausted
from wallie.analysis.jobs import run_analysis
from wallie.analysis.service import (
    SIGNAL_PREFIX,
    STRONG_INTENT_CODE,
    addressed_contact,
    analyze_conversation,
    reminder_key,
    score_conversation,
)
from wallie.db.fields import utcnow
from wallie.db.models import Entity, LeadScore, Message, OutboxItem, Reminder, UsageRecord
from wallie.settings import Settings

from .factory import BUYING, PROMISE, buying_chat, group_chat, make_chat
from .fake_openai import FakeOpenAI, Reply, completion, error_body, serve

API_KEY = "sk-test-not-a-real-key"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with serve() as state:
        yield state


@pytest.fixture
def openai_settings(settings: Settings, fake: FakeOpenAI) -> Settings:
    return settings.replace(openai_api_key=API_KEY, openai_base_url=fake.base_url)


def offline(conversation: Any, outcome: Any) -> Any:
    return OfflineAnalyzer().analyze(conversation)


def model_reply(message_id: int, **overrides: Any) -> Reply:
    """A valid model reply citing ``message_id``."""
    reply: dict[str, Any] = {
        "reminders": [
            {
                "text": "Send Ana the quote.",
                "due_at": (utcnow() + timedelta(days=1)).isoformat(),
                "source_message_id": message_id,
                "promised_by": "user",
                "kind": "commitment",
            }
        ],
        "entities": [
            {"kind": "amount", "value": "5000", "currency": "EUR", "message_id": message_id}
        ],
        "intent_signals": [{"kind": "price", "strength": 0.7, "message_id": message_id}],
        "score": {"value": 50, "reasons": [], "strong_intent": False},
    }
    reply.update(overrides)
    return Reply(200, completion(json.dumps(reply), 1200, 300))


def sent_ids(fake: FakeOpenAI, index: int) -> tuple[list[int], list[int]]:
    """Return the new and context message ids of request ``index``."""
    payload = json.loads(fake.requests[index].body["messages"][1]["content"])
    return (
        [message["id"] for message in payload["messages"]],
        [message["id"] for message in payload["context"]],
    )


def test_reminder_key_ignores_case_and_spacing() -> None:
    assert reminder_key(7, "Send the quote.") == reminder_key(7, " send  the QUOTE ")


def test_reminder_key_differs_per_message() -> None:
    assert reminder_key(7, "Send the quote.") != reminder_key(8, "Send the quote.")


def test_analysis_marks_messages_and_stores_findings(db: peewee.Database) -> None:
    chat = buying_chat()

    outcome = analyze_conversation(chat.user.id, chat.conversation.id, offline)

    assert outcome.analyzed == 2
    assert outcome.calls == 1
    assert Message.select().where(Message.analyzed_at.is_null()).count() == 0
    reminder = Reminder.get()
    assert reminder.source_message.body == PROMISE
    assert reminder.conversation_id == chat.conversation.id
    assert reminder.contact_id == chat.contact.id
    assert reminder.user_id == chat.user.id
    kinds = {row.kind for row in Entity.select()}
    assert f"{SIGNAL_PREFIX}purchase" in kinds


def test_analysis_twice_creates_reminders_once(db: peewee.Database) -> None:
    # Given a conversation analysed once
    chat = buying_chat()
    analyze_conversation(chat.user.id, chat.conversation.id, offline)
    reminders, entities = Reminder.select().count(), Entity.select().count()

    # When its messages are analysed again, as after a lost commit
    Message.update(analyzed_at=None).execute()
    again = analyze_conversation(chat.user.id, chat.conversation.id, offline)

    # Then nothing is stored twice
    assert again.analyzed == 2
    assert again.reminders == 0
    assert Reminder.select().count() == reminders
    assert Entity.select().count() == entities


def test_analysis_without_new_messages_makes_no_call(db: peewee.Database) -> None:
    chat = buying_chat()
    analyze_conversation(chat.user.id, chat.conversation.id, offline)

    again = analyze_conversation(chat.user.id, chat.conversation.id, offline)

    assert again.calls == 0


def test_analysis_batches_a_huge_import(db: peewee.Database) -> None:
    chat = make_chat()
    for minutes in range(5, 0, -1):
        chat.say("inbound", f"Message {minutes}", minutes_ago=minutes)

    outcome = analyze_conversation(
        chat.user.id, chat.conversation.id, offline, batch_size=2
    )

    assert outcome.calls == 3
    assert outcome.analyzed == 5


def test_openai_gets_only_new_messages(
    db: peewee.Database, fake: FakeOpenAI, openai_settings: Settings
) -> None:
    # Given a conversation whose two messages were analysed
    chat = buying_chat()
    first, second = list(Message.select().order_by(Message.id))
    fake.queue(model_reply(second.id))
    run_analysis(chat.user.id, chat.conversation.id, "auto", openai_settings)

    # When a third message arrives and the conversation is analysed again
    third = chat.say("inbound", "Great, thanks!")
    fake.queue(Reply(200, completion(json.dumps(_empty_reply()))))
    run_analysis(chat.user.id, chat.conversation.id, "auto", openai_settings)

    # Then each run made one call, the second with the new message only
    assert len(fake.requests) == 2
    assert sent_ids(fake, 0) == ([first.id, second.id], [])
    assert sent_ids(fake, 1) == ([third.id], [first.id, second.id])


def test_openai_findings_and_usage_are_stored(
    db: peewee.Database, fake: FakeOpenAI, openai_settings: Settings
) -> None:
    chat = buying_chat()
    promise = Message.get(Message.body == PROMISE)
    fake.queue(model_reply(promise.id))

    outcome = run_analysis(chat.user.id, chat.conversation.id, "auto", openai_settings)

    assert outcome.reminders == 1
    assert Reminder.get().text == "Send Ana the quote."
    assert Entity.get(Entity.kind == "amount").value == "5000 EUR"
    usage = UsageRecord.get()
    assert (usage.provider, usage.tokens_in, usage.tokens_out) == ("openai", 1200, 300)
    assert usage.actor == "conversation_analysis"


def test_rate_limit_becomes_retry_with_its_delay(
    db: peewee.Database, fake: FakeOpenAI, openai_settings: Settings
) -> None:
    chat = buying_chat()
    body = error_body("Rate limit reached.", "requests", "rate_limit_exceeded")
    fake.queue(Reply(429, body, {"retry-after": "7"}))

    with pytest.raises(dramatiq.Retry) as caught:
        run_analysis(chat.user.id, chat.conversation.id, "auto", openai_settings)

    assert caught.value.delay == 7000
    assert Message.select().where(Message.analyzed_at.is_null()).count() == 2


def quota_reply() -> Reply:
    body = error_body(
        "You exceeded your current quota.", "insufficient_quota", "insufficient_quota"
    )
    return Reply(429, body)


def test_quota_falls_back_offline_and_alerts_once(
    db: peewee.Database, fake: FakeOpenAI, openai_settings: Settings
) -> None:
    # Given two conversations and an account without quota
    chats = [buying_chat(), buying_chat(email="kim@example.com")]
    fake.queue(quota_reply())
    fake.queue(quota_reply())

    # When both are analysed
    outcomes = [
        run_analysis(chat.user.id, chat.conversation.id, "auto", openai_settings)
        for chat in chats
    ]

    # Then each made one call, went offline, and the operator got one mail
    assert len(fake.requests) == 2
    assert [outcome.analyzed for outcome in outcomes] == [2, 2]
    assert Reminder.select().count() == 2
    assert outcomes[0].notes[0].startswith("Degraded: ")
    alerts = list(OutboxItem.select())
    assert len(alerts) == 1
    assert alerts[0].recipient == openai_settings.mail_from
    assert alerts[0].idempotency_key.startswith("analysis-provider:ProviderQuotaExhausted:")


def test_quota_with_openai_engine_stops(
    db: peewee.Database, fake: FakeOpenAI, openai_settings: Settings
) -> None:
    chat = buying_chat()
    fake.queue(quota_reply())

    with pytest.raises(ProviderQuotaExhausted):
        run_analysis(chat.user.id, chat.conversation.id, "openai", openai_settings)

    assert len(fake.requests) == 1
    assert Message.select().where(Message.analyzed_at.is_null()).count() == 2


def test_malformed_output_asks_once_more(
    db: peewee.Database, fake: FakeOpenAI, openai_settings: Settings
) -> None:
    chat = buying_chat()
    promise = Message.get(Message.body == PROMISE)
    fake.queue(Reply(200, completion("This is not JSON.")))
    fake.queue(model_reply(promise.id))

    outcome = run_analysis(chat.user.id, chat.conversation.id, "auto", openai_settings)

    assert len(fake.requests) == 2
    assert outcome.notes == []
    assert Reminder.get().text == "Send Ana the quote."


def test_malformed_output_twice_goes_offline(
    db: peewee.Database, fake: FakeOpenAI, openai_settings: Settings
) -> None:
    chat = buying_chat()
    fake.queue(Reply(200, completion("This is not JSON.")))
    fake.queue(Reply(200, completion(json.dumps({"reminders": "nope"}))))

    outcome = run_analysis(chat.user.id, chat.conversation.id, "auto", openai_settings)

    assert len(fake.requests) == 2
    assert outcome.analyzed == 2
    assert "invalid twice" in outcome.notes[0]
    assert Reminder.select().count() == 1


def _empty_reply() -> dict[str, Any]:
    return {
        "reminders": [],
        "entities": [],
        "intent_signals": [],
        "score": {"value": 10, "reasons": [], "strong_intent": False},
    }


# Scoring.


def test_scoring_appends_history(db: peewee.Database) -> None:
    chat = buying_chat()
    analyze_conversation(chat.user.id, chat.conversation.id, offline)

    first = score_conversation(chat.user.id, chat.conversation.id, 80)
    second = score_conversation(chat.user.id, chat.conversation.id, 80)

    assert LeadScore.select().count() == 2
    assert second[0].previous == first[0].score
    assert LeadScore.get_by_id(first[0].lead_score_id).reasons[0]["code"] == (
        STRONG_INTENT_CODE
    )


def test_strong_intent_crosses_once(db: peewee.Database) -> None:
    chat = buying_chat()
    analyze_conversation(chat.user.id, chat.conversation.id, offline)

    first = score_conversation(chat.user.id, chat.conversation.id, 100)
    second = score_conversation(chat.user.id, chat.conversation.id, 100)

    assert first[0].crossed is True
    assert second[0].crossed is False


def test_threshold_crossing_after_a_drop(db: peewee.Database) -> None:
    # Given a contact who asked a price but did not say they will buy
    chat = make_chat()
    chat.say("outbound", "Hello Ana, shall I send you our offer?", minutes_ago=40)
    chat.say("inbound", "Yes please, how much for 200 licenses?", minutes_ago=30)
    analyze_conversation(chat.user.id, chat.conversation.id, offline)
    now = utcnow()
    threshold = score_conversation(chat.user.id, chat.conversation.id, 100, now)[0].score
    LeadScore.delete().execute()

    # When it is scored at the threshold twice, 60 quiet days later, then again
    scored = [
        score_conversation(chat.user.id, chat.conversation.id, threshold, moment)[0]
        for moment in (now, now, now + timedelta(days=60), now)
    ]

    # Then it crossed the first time and again after the drop below
    assert [row.crossed for row in scored] == [True, False, False, True]
    assert scored[2].score < threshold


def test_first_scoring_at_threshold_crosses(db: peewee.Database) -> None:
    chat = make_chat()
    chat.say("inbound", "How much for 200 licenses?", minutes_ago=30)
    analyze_conversation(chat.user.id, chat.conversation.id, offline)

    scored = score_conversation(chat.user.id, chat.conversation.id, 1)

    assert scored[0].crossed is True


def test_group_scores_each_other_participant(db: peewee.Database) -> None:
    chat = make_chat()
    conversation, (ana, bo) = group_chat(chat.user, ("Ana Group", "Bo Group"))
    for contact, body in ((ana, BUYING), (bo, "Hi all")):
        Message.create(
            user=chat.user,
            channel="whatsapp",
            external_id=f"g-{contact.id}",
            conversation=conversation,
            sender=contact,
            direction="inbound",
            sent_at=utcnow() - timedelta(minutes=5),
            body=body,
        )
    analyze_conversation(chat.user.id, conversation.id, offline)

    scored = score_conversation(chat.user.id, conversation.id, 80)

    by_contact = {row.contact_id: row.score for row in scored}
    assert set(by_contact) == {ana.id, bo.id}
    assert by_contact[ana.id] > by_contact[bo.id]


def _group_promise(names: tuple[str, ...], inbound_from: int | None) -> tuple[list[Any], Reminder]:
    """Analyse a group chat where the user promises something; return members and reminder."""
    chat = make_chat()
    group, members = group_chat(chat.user, names)
    sent_at = utcnow()
    if inbound_from is not None:
        Message.create(
            user=chat.user, channel="whatsapp", external_id=f"g-in-{group.id}", conversation=group,
            sender=members[inbound_from], direction="inbound", sent_at=sent_at - timedelta(minutes=30),
            body="Hello all.",
        )

    Message.create(
        user=chat.user, channel="whatsapp", external_id=f"g-out-{group.id}", conversation=group,
        direction="outbound", sent_at=sent_at - timedelta(minutes=20), body=PROMISE,
    )
    analyze_conversation(chat.user.id, group.id, offline)
    return members, Reminder.get(Reminder.conversation == group.id)


def test_group_promise_gets_addressed_contact(db: peewee.Database) -> None:
    # Given a group where Ana Souza wrote first, so the reminder names her
    members, reminder = _group_promise(("Ana Souza", "Ana", "Bruno Lima"), inbound_from=0)

    # Then the user's promise is linked to her, not to "Ana" or Bruno
    assert reminder.text.startswith("You promised Ana Souza")
    assert reminder.contact_id == members[0].id


def test_group_promise_without_named_member_has_no_contact(db: peewee.Database) -> None:
    # Given a group where no member wrote, so the reminder names nobody
    _, reminder = _group_promise(("Ana Souza", "Bruno Lima"), inbound_from=None)

    assert reminder.text.startswith("You promised the contact")
    assert reminder.contact_id is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("You promised Ana Souza: “call”", 1),
        ("You promised ana souza: “call”", 1),
        ("You promised Ana: “call”", 2),
        ("You promised Anabel: “call”", None),
        ("Ana Souza and Bruno Lima asked you", None),
        ("You promised the contact: “call”", None),
    ],
)
def test_addressed_contact_matches_whole_names(text: str, expected: int | None) -> None:
    members = [(1, "Ana Souza"), (2, "Ana"), (3, "Bruno Lima")]

    assert addressed_contact(text, members) == expected
