"""The analysis, scoring and hot-lead actors on the in-process broker."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dramatiq
import pytest

import actors
from tests.analysis.factory import Chat, buying_chat
from tests.analysis.fake_openai import FakeOpenAI, Reply, completion, error_body, serve
from tests.notify.smtp import smtp_server
from wallie.broker import run_embedded
from wallie.db.models import (
    JobRun,
    LeadScore,
    LimitOverride,
    Message,
    Notification,
    OutboxItem,
    Reminder,
)
from wallie.settings import Settings

API_KEY = "sk-test-not-a-real-key"
SECRET = "webhook-test-secret"

#: A contact name with markup, to check that mail HTML escapes user text.
HOSTILE_NAME = "Ana <script>alert(1)</script> & Co"


@pytest.fixture
def configure(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Return a function that sets what every actor's get_settings() returns."""

    def apply(**changes: Any) -> Settings:
        configured = settings.replace(**changes)
        monkeypatch.setattr("actors.analysis.get_settings", lambda: configured)
        monkeypatch.setattr("actors.outbox.get_settings", lambda: configured)
        return configured

    apply()
    yield apply


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with serve() as state:
        yield state


def runs(actor: str) -> list[JobRun]:
    return list(JobRun.select().where(JobRun.actor == actor).order_by(JobRun.id))


def analyse(chat: Chat, broker: dramatiq.Broker, **options: Any) -> None:
    actors.conversation_analysis.send(
        user_id=chat.user.id, conversation_id=chat.conversation.id, **options
    )
    run_embedded(broker)


def test_analysis_chain_reminds_scores_and_notifies(
    stub_broker: dramatiq.Broker, configure: Any
) -> None:
    settings = configure()
    chat = buying_chat()

    analyse(chat, stub_broker)

    assert Reminder.select().count() == 1
    assert LeadScore.select().count() == 1
    assert Notification.get().kind == "hot_lead"
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 1
    statuses = {run.actor: run.status for run in JobRun.select()}
    assert statuses["conversation_analysis"] == "succeeded"
    assert statuses["scoring_analysis"] == "succeeded"
    assert statuses["hot_lead_notification"] == "succeeded"


def test_analysis_twice_reminds_once(stub_broker: dramatiq.Broker, configure: Any) -> None:
    configure()
    chat = buying_chat()

    analyse(chat, stub_broker)
    analyse(chat, stub_broker)

    assert Reminder.select().count() == 1
    assert len(runs("scoring_analysis")) == 1


def test_rate_limit_retries_after_the_hint(
    stub_broker: dramatiq.Broker, configure: Any, fake: FakeOpenAI
) -> None:
    configure(openai_api_key=API_KEY, openai_base_url=fake.base_url)
    chat = buying_chat()
    body = error_body("Rate limit reached.", "requests", "rate_limit_exceeded")
    fake.queue(Reply(429, body, {"retry-after-ms": "50"}))
    fake.queue(Reply(200, completion(json.dumps(_empty_reply()))))

    analyse(chat, stub_broker)

    attempts = runs("conversation_analysis")
    assert [run.status for run in attempts] == ["retrying", "succeeded"]
    assert attempts[0].error_type == "Retry"
    assert len(fake.requests) == 2


def test_insufficient_quota_with_openai_engine_fails_without_retry(
    stub_broker: dramatiq.Broker, configure: Any, fake: FakeOpenAI
) -> None:
    configure(openai_api_key=API_KEY, openai_base_url=fake.base_url)
    chat = buying_chat()
    body = error_body("No quota.", "insufficient_quota", "insufficient_quota")
    fake.queue(Reply(429, body))

    analyse(chat, stub_broker, engine="openai")

    attempts = runs("conversation_analysis")
    assert [run.status for run in attempts] == ["failed"]
    assert attempts[0].error_type == "ProviderQuotaExhausted"
    assert len(fake.requests) == 1


def test_insufficient_quota_on_auto_degrades_and_alerts(
    stub_broker: dramatiq.Broker, configure: Any, fake: FakeOpenAI
) -> None:
    settings = configure(openai_api_key=API_KEY, openai_base_url=fake.base_url)
    chat = buying_chat()
    body = error_body("No quota.", "insufficient_quota", "insufficient_quota")
    fake.queue(Reply(429, body))

    analyse(chat, stub_broker)

    attempt = runs("conversation_analysis")[0]
    assert attempt.status == "succeeded"
    assert attempt.reason.startswith("Degraded: ")
    alert = OutboxItem.get(OutboxItem.idempotency_key.startswith("analysis-provider:"))
    assert alert.recipient == settings.mail_from
    assert alert.status == "sent"
    assert Reminder.select().count() == 1


def test_cap_reached_goes_offline(
    stub_broker: dramatiq.Broker, configure: Any, fake: FakeOpenAI
) -> None:
    # Given a user whose daily AI analyses are used up
    configure(openai_api_key=API_KEY, openai_base_url=fake.base_url)
    chat = buying_chat()
    LimitOverride.create(user=chat.user, name="ai_analyses_per_day", value="0")

    # When a conversation is analysed
    analyse(chat, stub_broker)

    # Then the offline rules ran, as run history notes, and OpenAI got nothing
    attempt = runs("conversation_analysis")[0]
    assert attempt.status == "succeeded"
    assert attempt.reason.startswith("Degraded: ")
    assert fake.requests == []
    assert Reminder.select().count() == 1


def test_burst_of_scorings_runs_once(stub_broker: dramatiq.Broker, configure: Any) -> None:
    configure()
    chat = buying_chat()

    for _ in range(3):
        actors.scoring_analysis.send(
            user_id=chat.user.id, conversation_id=chat.conversation.id
        )
    run_embedded(stub_broker)

    statuses = sorted(run.status for run in runs("scoring_analysis"))
    assert statuses == ["skipped", "skipped", "succeeded"]
    assert LeadScore.select().count() == 1


def test_scoring_is_debounced_per_conversation(stub_broker: dramatiq.Broker) -> None:
    options = stub_broker.get_actor("scoring_analysis").options["debounce"]

    assert (options.key, options.quiet_ms, options.max_wait_ms) == (
        "conversation_id",
        600_000,
        3_600_000,
    )


def score(chat: Chat, broker: dramatiq.Broker) -> None:
    actors.scoring_analysis.send(user_id=chat.user.id, conversation_id=chat.conversation.id)
    run_embedded(broker)


def test_hot_crossing_notifies_once_and_again_after_a_drop(
    stub_broker: dramatiq.Broker, configure: Any
) -> None:
    # Given an analysed buyer, scored hot twice
    configure()
    chat = buying_chat()
    analyse(chat, stub_broker)
    score(chat, stub_broker)
    assert Notification.select().count() == 1

    # When a rescoring finds them cold, then they are scored hot again
    LeadScore.create(user=chat.user, contact=chat.contact, score=10, reasons=[])
    score(chat, stub_broker)

    # Then each crossing got one notice
    assert Notification.select().count() == 2
    keys = {item.idempotency_key for item in OutboxItem.select()}
    crossings = [row.id for row in LeadScore.select().order_by(LeadScore.id)]
    assert f"hot-lead:{chat.contact.id}:{crossings[0]}" in keys
    assert f"hot-lead:{chat.contact.id}:{crossings[-1]}" in keys


def crossing(chat: Chat) -> LeadScore:
    return LeadScore.create(
        user=chat.user,
        contact=chat.contact,
        conversation=chat.conversation,
        score=91,
        reasons=[{"code": "price_question", "points": 12, "text": "Asked <b>price</b>."}],
    )


def notify(chat: Chat, row: LeadScore, broker: dramatiq.Broker) -> None:
    actors.hot_lead_notification.send(
        user_id=chat.user.id, contact_id=chat.contact.id, lead_score_id=row.id
    )
    run_embedded(broker)


def test_retried_notice_never_sends_twice(
    stub_broker: dramatiq.Broker, configure: Any
) -> None:
    settings = configure()
    chat = buying_chat()
    row = crossing(chat)

    notify(chat, row, stub_broker)
    notify(chat, row, stub_broker)

    assert Notification.select().count() == 1
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 1
    assert len(runs("deliver_outbox")) == 2


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return part.get_content()


def test_hot_lead_mail_escapes_user_text_in_eml(
    stub_broker: dramatiq.Broker, configure: Any
) -> None:
    settings = configure()
    chat = buying_chat(contact_name=HOSTILE_NAME)
    notify(chat, crossing(chat), stub_broker)

    [path] = settings.outbox_dir.glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)

    html = html_part(message)
    assert "<script>" not in html
    assert "<b>price</b>" not in html
    assert "Ana &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert HOSTILE_NAME in text
    assert message["To"] == chat.user.email


def test_hot_lead_mail_through_smtp(stub_broker: dramatiq.Broker, configure: Any) -> None:
    chat = buying_chat(contact_name=HOSTILE_NAME)
    with smtp_server() as (url, collector):
        configure(smtp_url=url)
        notify(chat, crossing(chat), stub_broker)

    assert len(collector.messages) == 1
    received = collector.messages[0]
    assert received.recipients == [chat.user.email]
    message = email.message_from_bytes(received.content, policy=policy.default)
    assert message["Subject"].startswith("Hot lead: ")
    assert "<script>" not in html_part(message)


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server hook name
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """Run a webhook receiver on loopback; yield its URL and the requests it got."""
    handler = type("Receiver", (_Receiver,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler.received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_hot_lead_webhook_is_signed(stub_broker: dramatiq.Broker, configure: Any) -> None:
    chat = buying_chat()
    row = crossing(chat)
    with webhook_receiver() as (url, received):
        configure(webhook_url=url, webhook_secret=SECRET)
        notify(chat, row, stub_broker)
        notify(chat, row, stub_broker)

    assert len(received) == 1
    headers, body = received[0]
    signed = headers["X-Wallie-Timestamp"].encode() + b"." + body
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert headers["X-Wallie-Signature"] == f"sha256={expected}"
    event = json.loads(body)
    assert event["type"] == "hot_lead"
    assert event["contact"]["id"] == chat.contact.id
    assert event["lead_score_id"] == row.id


def test_notice_for_another_users_score_fails(
    stub_broker: dramatiq.Broker, configure: Any
) -> None:
    configure()
    chat, other = buying_chat(), buying_chat(email="kim@example.com")

    notify(other, crossing(chat), stub_broker)

    assert [run.status for run in runs("hot_lead_notification")] == ["failed"]
    assert Notification.select().count() == 0


def test_unanalysed_messages_stay_for_a_failed_run(
    stub_broker: dramatiq.Broker, configure: Any
) -> None:
    configure()
    chat = buying_chat()

    analyse(chat, stub_broker, engine="openai")

    assert runs("conversation_analysis")[0].error_type == "ConfigurationError"
    assert Message.select().where(Message.analyzed_at.is_null()).count() == 2


def _empty_reply() -> dict[str, Any]:
    return {
        "reminders": [],
        "entities": [],
        "intent_signals": [],
        "score": {"value": 10, "reasons": [], "strong_intent": False},
    }
