from __future__ import annotations

from datetime import UTC, datetime, timedelta

import peewee
import pytest

from tests.reports import factories
from wallie.db.models import OutboxItem, Reminder, User
from wallie.reports.churn import detect_churn, record_churn_risks

NOW = datetime(2026, 6, 1, 5, 0, tzinfo=UTC)


@pytest.fixture
def sam(db: peewee.Database) -> User:
    return factories.user("sam@example.com", "Europe/Amsterdam")


def test_quiet_client_is_at_risk(sam: User) -> None:
    chat = factories.conversation(sam, factories.contact(sam, "Ana"))
    factories.message(chat, "inbound", NOW - timedelta(days=30))
    factories.message(chat, "outbound", NOW - timedelta(days=29))

    [risk] = detect_churn(sam, 14, NOW)

    assert risk.name == "Ana"
    assert risk.reasons == ("No message either way for 29 days.",)


def test_active_client_is_not_at_risk(sam: User) -> None:
    chat = factories.conversation(sam, factories.contact(sam, "Bob"))
    factories.message(chat, "inbound", NOW - timedelta(days=3))
    factories.message(chat, "outbound", NOW - timedelta(days=2))

    assert detect_churn(sam, 14, NOW) == []


def test_falling_frequency_and_unanswered_add_up(sam: User) -> None:
    chat = factories.conversation(sam, factories.contact(sam, "Cleo"))
    for days in range(40, 110, 5):
        factories.message(chat, "inbound", NOW - timedelta(days=days))
        factories.message(chat, "outbound", NOW - timedelta(days=days, hours=-1))
    factories.message(chat, "inbound", NOW - timedelta(days=5))

    [risk] = detect_churn(sam, 14, NOW)

    assert len(risk.reasons) == 2
    assert risk.score == 60


def test_task_is_created_once_per_episode(sam: User) -> None:
    ana = factories.contact(sam, "Ana")
    chat = factories.conversation(sam, ana)
    factories.message(chat, "inbound", NOW - timedelta(days=30))

    record_churn_risks(sam.id, 14, NOW)
    record_churn_risks(sam.id, 14, NOW + timedelta(days=1))

    [task] = Reminder.select()
    assert task.text == "Check in with Ana"
    assert task.key == f"churn:{ana.id}:2026-05-02"
    assert OutboxItem.select().count() == 1


def test_new_episode_after_client_writes_again(sam: User) -> None:
    ana = factories.contact(sam, "Ana")
    chat = factories.conversation(sam, ana)
    factories.message(chat, "inbound", NOW - timedelta(days=60))
    record_churn_risks(sam.id, 14, NOW - timedelta(days=40))
    factories.message(chat, "inbound", NOW - timedelta(days=30))

    record_churn_risks(sam.id, 14, NOW)

    assert Reminder.select().count() == 2
