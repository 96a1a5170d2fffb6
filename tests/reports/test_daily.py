from __future__ import annotations

import email
from datetime import UTC, date, datetime
from email import policy

import dramatiq
import peewee
import pytest
import time_machine

import actors
from tests.notify.smtp import smtp_server
from tests.reports import factories
from wallie.broker import run_embedded
from wallie.db.models import OutboxItem, User
from wallie.reports.daily import build_daily_summaries, preview_daily_summary, queue_daily_summary
from wallie.settings import Settings

#: The summary of Tuesday 10 March 2026 in Amsterdam (UTC+1) covers Monday 9 March.
DAY = date(2026, 3, 10)
AS_OF = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)


def _at(hour: int, minute: int = 0, day: int = 9) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def sam(db: peewee.Database) -> User:
    return factories.user("sam@example.com", "Europe/Amsterdam")


def _busy_day(owner: User) -> None:
    ana = factories.contact(owner, "Ana <script>alert(1)</script>")
    bob = factories.contact(owner, "Bob")
    with_ana = factories.conversation(owner, ana)
    with_bob = factories.conversation(owner, bob)
    factories.message(with_ana, "outbound", _at(9))
    factories.message(with_ana, "inbound", _at(10))
    factories.message(with_bob, "inbound", _at(11))
    factories.message(with_bob, "outbound", _at(12))
    factories.reminder(owner, "Send <b>quote</b>", _at(15, day=10), contact=ana)
    factories.reminder(owner, "Call Bob", _at(8, day=5), contact=bob)
    factories.reminder(owner, "Done already", _at(8, day=5), status="done")
    factories.reminder(owner, "Snoozed", _at(8, day=5), status="snoozed", snoozed_until=_at(12, day=11))
    factories.score(owner, bob, 40, _at(9, day=2))
    factories.score(owner, bob, 85, _at(13))
    factories.score(owner, ana, 30, _at(14))


def test_summary_counts_yesterday_messages(sam: User) -> None:
    _busy_day(sam)

    summary = preview_daily_summary(sam, DAY, AS_OF)

    assert summary.messages_in == 2
    assert summary.messages_out == 2


def test_summary_splits_due_today_and_overdue(sam: User) -> None:
    _busy_day(sam)

    summary = preview_daily_summary(sam, DAY, AS_OF)

    assert [r.text for r in summary.due_today] == ["Send <b>quote</b>"]
    assert [r.text for r in summary.overdue] == ["Call Bob"]


def test_summary_lists_conversations_waiting_for_answer(sam: User) -> None:
    _busy_day(sam)

    summary = preview_daily_summary(sam, DAY, AS_OF)

    assert [f.name for f in summary.follow_ups] == ["Ana <script>alert(1)</script>"]


def test_summary_shows_score_change_and_new_leads(sam: User) -> None:
    _busy_day(sam)

    summary = preview_daily_summary(sam, DAY, AS_OF)

    assert [(lead.name, lead.score, lead.change) for lead in summary.leads] == [
        ("Bob", 85, 45),
        ("Ana <script>alert(1)</script>", 30, None),
    ]


def test_empty_day_writes_no_mail(sam: User) -> None:
    item = queue_daily_summary(sam.id, DAY, AS_OF)

    assert item is None
    assert OutboxItem.select().count() == 0


def test_batch_covers_users_in_several_zones(db: peewee.Database) -> None:
    users = [factories.user(f"u{i}@example.com", zone) for i, zone in enumerate(("Asia/Kolkata", "America/Los_Angeles"))]
    for user in users:
        _busy_day(user)

    summaries = build_daily_summaries([(user, DAY) for user in users], AS_OF)

    assert sorted(summaries) == sorted(user.id for user in users)
    assert all(len(summary.overdue) == 1 for summary in summaries.values())


def test_summary_mail_through_smtp_escapes_html(
    stub_broker: dramatiq.Broker, settings: Settings, sam: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a busy day with contact text that holds HTML
    _busy_day(sam)

    with smtp_server() as (url, collector):
        monkeypatch.setattr("actors.outbox.get_settings", lambda: settings.replace(smtp_url=url))

        # When the actor runs twice for the same local date
        with time_machine.travel(AS_OF):
            actors.daily_summary.send(sam.id, DAY.isoformat())
            actors.daily_summary.send(sam.id, DAY.isoformat())
            run_embedded(stub_broker)

    # Then one mail arrives, with both parts, and the HTML part is escaped
    [received] = collector.messages
    parsed = email.message_from_bytes(received.content, policy=policy.default)
    html = parsed.get_body(("html",)).get_content()
    text = parsed.get_body(("plain",)).get_content()
    assert received.recipients == ["sam@example.com"]
    assert parsed["Subject"] == "Your Wallie summary for Tuesday 10 March"
    assert "Ana <script>alert(1)</script>" in text
    assert "<script>" not in html
    assert "Ana &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Send &lt;b&gt;quote&lt;/b&gt;" in html


def test_summary_mail_written_as_eml(
    stub_broker: dramatiq.Broker, settings: Settings, sam: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    _busy_day(sam)
    monkeypatch.setattr("actors.outbox.get_settings", lambda: settings)

    with time_machine.travel(AS_OF):
        actors.daily_summary.send(sam.id, DAY.isoformat())
        run_embedded(stub_broker)

    [path] = list(settings.outbox_dir.glob("*.eml"))
    parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert parsed["To"] == "sam@example.com"
    assert "Overdue reminders (1)" in parsed.get_body(("plain",)).get_content()
    assert "<script>" not in parsed.get_body(("html",)).get_content()
