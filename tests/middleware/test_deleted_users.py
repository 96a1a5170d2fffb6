from __future__ import annotations

import dramatiq
import peewee
import pytest
from dramatiq.broker import MessageProxy
from dramatiq.middleware import SkipMessage
from playhouse.test_utils import assert_query_count

from wallie.broker import embedded_worker, run_embedded
from wallie.db.models import JobRun, User
from wallie.gdpr import request_deletion, run_deletion
from wallie.middleware.deleted_users import DeletedUsers
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


class FakeClock:
    """A monotonic clock in seconds that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _process(broker: dramatiq.Broker, middleware: DeletedUsers, message: dramatiq.Message) -> str:
    """Run the middleware's check on ``message``; return ``skipped`` or ``runs``."""
    try:
        middleware.before_process_message(broker, MessageProxy(message))
    except SkipMessage:
        return "skipped"

    return "runs"


def test_cached_list_sees_deletion_after_refresh(stub_broker: dramatiq.Broker, settings: Settings, db: peewee.Database) -> None:
    # Given a worker whose list of deleted users was read before a deletion
    @dramatiq.actor(queue_name="default", max_retries=0)
    def touch_user(user_id: int) -> None:
        pass

    clock = FakeClock()
    middleware = DeletedUsers(refresh_interval_ms=1_000, clock=clock)
    user = User.create(email="ana@example.com")
    message = touch_user.message(user.id)
    assert _process(stub_broker, middleware, message) == "runs"

    # When the user's deletion is requested and then finished
    request = request_deletion("user", user.id, user.id)
    before_refresh = _process(stub_broker, middleware, message)
    clock.now += 1.0
    after_refresh = _process(stub_broker, middleware, message)
    run_deletion(request.id, settings)
    clock.now += 1.0
    after_deletion = _process(stub_broker, middleware, message)

    # Then the list is reused within the interval and the message is skipped
    # from the first check after it
    assert before_refresh == "runs"
    assert after_refresh == "skipped"
    assert after_deletion == "skipped"


def test_cached_list_reads_once_per_interval(stub_broker: dramatiq.Broker, db: peewee.Database) -> None:
    @dramatiq.actor(queue_name="default", max_retries=0)
    def touch_user(user_id: int) -> None:
        pass

    clock = FakeClock()
    middleware = DeletedUsers(refresh_interval_ms=1_000, clock=clock)
    users = [User.create(email=f"user{number}@example.com") for number in range(3)]

    with assert_query_count(1):
        outcomes = [_process(stub_broker, middleware, touch_user.message(user.id)) for user in users]

    assert outcomes == ["runs", "runs", "runs"]


def test_cached_list_skips_only_listed_users(stub_broker: dramatiq.Broker, settings: Settings, db: peewee.Database) -> None:
    # Given a finished deletion of one account and another account
    @dramatiq.actor(queue_name="default", max_retries=0)
    def touch_user(user_id: int) -> None:
        pass

    middleware = DeletedUsers(refresh_interval_ms=1_000, clock=FakeClock())
    deleted = User.create(email="ana@example.com")
    other = User.create(email="bob@example.com")
    run_deletion(request_deletion("user", deleted.id, deleted.id).id, settings)

    # When both are checked
    deleted_outcome = _process(stub_broker, middleware, touch_user.message(deleted.id))
    other_outcome = _process(stub_broker, middleware, touch_user.message(other.id))

    # Then only the deleted account's job is skipped
    assert deleted_outcome == "skipped"
    assert other_outcome == "runs"


def test_negative_refresh_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"refresh_interval_ms must be 0 or more \(got -1\)"):
        DeletedUsers(refresh_interval_ms=-1)


def test_worker_on_redis_skips_deleted_user(redis_broker: dramatiq.Broker, settings: Settings, db: peewee.Database) -> None:
    # Given jobs on Redis for a user whose deletion finished and for another
    calls: list[int] = []

    @dramatiq.actor(queue_name="default", max_retries=0)
    def touch_user(user_id: int) -> None:
        calls.append(user_id)

    user = User.create(email="ana@example.com")
    other = User.create(email="bob@example.com")
    message = touch_user.send(user.id)
    touch_user.send(other.id)
    run_deletion(request_deletion("user", user.id, user.id).id, settings)

    # When a worker with the cached list processes the queue
    with embedded_worker(redis_broker):
        redis_broker.join("default", timeout=30_000)

    # Then only the other user's job ran
    assert calls == [other.id]
    assert JobRun.get(JobRun.message_id == message.message_id).status == "skipped"
