from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import peewee
import pytest

from tests.reports import factories
from wallie.db.models import LeadScore, User
from wallie.reports.weekly import build_weekly_report, queue_weekly_report, render_weekly_report

#: Monday of ISO week 2026-W10; the week before starts on 23 February.
MONDAY = date(2026, 3, 2)
AS_OF = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture
def sam(db: peewee.Database) -> User:
    return factories.user("sam@example.com", "UTC")


def _weeks(owner: User) -> None:
    ana = factories.contact(owner, "Ana")
    chat = factories.conversation(owner, ana)
    before = MONDAY - timedelta(days=7)
    factories.message(chat, "inbound", _at(before, 9))
    factories.message(chat, "outbound", _at(before, 10))
    factories.message(chat, "inbound", _at(MONDAY, 9))
    factories.message(chat, "outbound", _at(MONDAY, 11))
    factories.message(chat, "inbound", _at(MONDAY + timedelta(days=1), 9))
    factories.score(owner, ana, 50, _at(before, 12))
    factories.score(owner, ana, 80, _at(MONDAY, 12))
    factories.reminder(owner, "Kept", _at(MONDAY, 15), status="done")
    factories.reminder(owner, "Missed", _at(MONDAY, 16))


def test_report_compares_two_weeks(sam: User) -> None:
    _weeks(sam)

    report = build_weekly_report(sam, MONDAY, AS_OF)

    assert (report.current.received, report.previous.received) == (2, 1)
    assert report.current.median_reply == timedelta(hours=2)
    assert report.previous.median_reply == timedelta(hours=1)
    assert (report.current.new_leads, report.previous.new_leads) == (0, 1)
    assert (report.current.reminders_kept, report.current.reminders_missed) == (1, 1)
    assert report.current.conversions == 1
    assert report.previous.conversions == 0
    assert report.current.top_clients == [("Ana", 3)]


def test_conversions_count_crossings_and_stated_intent(sam: User) -> None:
    _weeks(sam)
    bob = factories.contact(sam, "Bob")
    cleo = factories.contact(sam, "Cleo")
    stated = LeadScore.create(
        user=sam, contact=bob, score=55, computed_at=_at(MONDAY, 14),
        reasons=[{"code": "strong_intent", "points": 0, "text": "Stated they want to buy."}],
    )
    factories.score(sam, cleo, 60, _at(MONDAY, 9))
    factories.score(sam, cleo, 79, _at(MONDAY, 10))

    report = build_weekly_report(sam, MONDAY, AS_OF)

    # Ana crossed 80, Bob stated an intent; Cleo stayed under the threshold.
    assert stated.score < 80
    assert report.current.conversions == 2


def test_report_insight_on_slower_replies(sam: User) -> None:
    _weeks(sam)

    report = build_weekly_report(sam, MONDAY, AS_OF)

    assert "Replies took 100% longer than the week before." in report.insights


def test_report_renders_both_parts(sam: User) -> None:
    _weeks(sam)

    mail = render_weekly_report(build_weekly_report(sam, MONDAY, AS_OF))

    assert mail.subject == "Your Wallie week 2026-W10"
    assert "Median reply time:  2 h 00 min (before: 1 h 00 min)" in mail.text
    assert "<td>Conversions</td><td>1</td>" in mail.html


def test_empty_weeks_send_nothing(sam: User) -> None:
    assert queue_weekly_report(sam.id, "2026-W11", AS_OF) is None


def test_report_is_queued_once_per_week(sam: User) -> None:
    _weeks(sam)

    first = queue_weekly_report(sam.id, "2026-W11", AS_OF)
    second = queue_weekly_report(sam.id, "2026-W11", AS_OF)

    assert first.idempotency_key == f"weekly-report:{sam.id}:2026-W11"
    assert second.id == first.id
