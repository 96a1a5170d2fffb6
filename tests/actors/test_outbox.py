from __future__ import annotations

import dramatiq
import pytest

import actors
from wallie.broker import run_embedded
from wallie.db.models import JobRun, OutboxItem, User
from wallie.notify import MailContent, add_email
from wallie.settings import Settings


@pytest.fixture
def mail_item(stub_broker: dramatiq.Broker) -> OutboxItem:
    user = User.create(email="sam@example.com")
    return add_email(user, "weekly:1:2026-W49", "sam@example.com", MailContent("Your week", "3 new leads."))


def test_sweep_delivers_every_pending_item_once(
    stub_broker: dramatiq.Broker, settings: Settings, mail_item: OutboxItem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("actors.outbox.get_settings", lambda: settings)

    actors.outbox_sweep.send()
    run_embedded(stub_broker)
    actors.outbox_sweep.send()
    run_embedded(stub_broker)

    assert OutboxItem.get_by_id(mail_item.id).status == "sent"
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 1
    deliveries = JobRun.select().where(JobRun.actor == "deliver_outbox")
    assert [run.status for run in deliveries] == ["succeeded"]


def test_outbox_actors_are_declared_with_their_schedule(stub_broker: dramatiq.Broker) -> None:
    assert str(stub_broker.get_actor("outbox_sweep").options["periodic"]) == "* * * * *"
    assert stub_broker.get_actor("deliver_outbox").queue_name == "outbox"
