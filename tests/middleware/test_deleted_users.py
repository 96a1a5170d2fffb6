from __future__ import annotations

import dramatiq
import peewee

from wallie.broker import run_embedded
from wallie.db.models import JobRun, User
from wallie.gdpr import request_deletion, run_deletion
from wallie.settings import Settings


def test_queued_message_skipped_after_deletion(stub_broker: dramatiq.Broker, settings: Settings, db: peewee.Database) -> None:
    # Given a job queued for a user who is then deleted
    calls: list[int] = []

    @dramatiq.actor(queue_name="default", max_retries=0)
    def touch_user(user_id: int) -> None:
        calls.append(user_id)

    user = User.create(email="ana@example.com")
    other = User.create(email="bob@example.com")
    message = touch_user.send(user.id)
    other_message = touch_user.send(other.id)
    request = request_deletion("user", user.id, user.id)
    run_deletion(request.id, settings)

    # When the queue is processed
    run_embedded(stub_broker)

    # Then the deleted user's job is skipped with the reason, the other runs
    run = JobRun.get(JobRun.message_id == message.message_id)
    assert calls == [other.id]
    assert run.status == "skipped"
    assert f"deletion request {request.id}" in run.reason
    assert JobRun.get(JobRun.message_id == other_message.message_id).status == "succeeded"


def test_message_skipped_while_deletion_runs(stub_broker: dramatiq.Broker, db: peewee.Database) -> None:
    calls: list[int] = []

    @dramatiq.actor(queue_name="default", max_retries=0)
    def touch_user(user_id: int) -> None:
        calls.append(user_id)

    user = User.create(email="ana@example.com")
    request_deletion("user", user.id, user.id)
    message = touch_user.send(user_id=user.id)

    run_embedded(stub_broker)

    assert calls == []
    assert JobRun.get(JobRun.message_id == message.message_id).status == "skipped"
