from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dramatiq
import peewee
import pytest
import time_machine

import actors
from tests.reports import factories
from wallie.broker import run_embedded
from wallie.db.models import Notification, OutboxItem, Reminder, User
from wallie.reports.reminders import notify_due_reminders
from wallie.settings import Settings

NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def sam(db: peewee.Database) -> User:
    return factories.user("sam@example.com", "Europe/Amsterdam")


def test_reminder_due_in_outage_is_notified_once_after(
    stub_broker: dramatiq.Broker, settings: Settings, sam: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a reminder due at 12:30 while no scheduler ran from 12:00 to 17:00
    reminder = factories.reminder(sam, "Send the contract", NOON + timedelta(minutes=30))
    monkeypatch.setattr("actors.outbox.get_settings", lambda: settings)

    # When the hourly check runs at 17:00 and again at 18:00
    for hour in (17, 18):
        with time_machine.travel(NOON.replace(hour=hour)):
            actors.reminder_check.send()
            run_embedded(stub_broker)

    # Then it is notified once, in the app and by mail
    assert Reminder.get_by_id(reminder.id).notified_at.hour == 17
    assert [n.title for n in Notification.select()] == ["Send the contract"]
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 1
    keys = sorted(item.idempotency_key for item in OutboxItem.select())
    assert keys == [f"reminder:{reminder.id}", f"reminder:{reminder.id}:email"]


def test_snoozed_and_done_reminders_are_left_alone(sam: User) -> None:
    factories.reminder(sam, "Done", NOON, status="done")
    factories.reminder(sam, "Snoozed", NOON, status="snoozed", snoozed_until=NOON + timedelta(hours=2))
    factories.reminder(sam, "Later", NOON + timedelta(hours=1))

    assert notify_due_reminders(NOON + timedelta(minutes=30)) == []


def test_snoozed_reminder_is_notified_after_snooze(sam: User) -> None:
    factories.reminder(sam, "Snoozed", NOON, status="snoozed", snoozed_until=NOON + timedelta(hours=2))

    items = notify_due_reminders(NOON + timedelta(hours=3))

    assert len(items) == 2


def test_second_check_notifies_nothing(sam: User) -> None:
    factories.reminder(sam, "Call Ana", NOON)

    first = notify_due_reminders(NOON)
    second = notify_due_reminders(NOON + timedelta(hours=1))

    assert len(first) == 2
    assert second == []


def test_many_due_reminders_are_all_notified(sam: User) -> None:
    for index in range(1200):
        factories.reminder(sam, f"Task {index}", NOON - timedelta(minutes=index))

    notify_due_reminders(NOON)

    assert Reminder.select().where(Reminder.notified_at.is_null()).count() == 0
