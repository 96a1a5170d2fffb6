from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import dramatiq
import peewee
import pytest
import redis

import wallie.backfill.run as backfill_run
from wallie.backfill import Filters, Pacer, create_backfill, plan_backfill, run_backfill
from wallie.backfill.sender import sent_set_key
from wallie.broker import REDIS_NAMESPACE
from wallie.db.models import AuditLog, Backfill, Conversation, JobRun, User
from wallie.errors import InvalidArguments

#: Queue of the test actors, kept apart from the product's queues.
QUEUE = "backfill_test"


def _conversations(count: int, channel: str = "whatsapp") -> User:
    user = User.create(email=f"{channel}-{count}@example.com")
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [
        {"user": user.id, "channel": channel, "external_id": f"c{index}", "last_message_at": moment, "created_at": moment}
        for index in range(count)
    ]
    database = Conversation._meta.database
    for start in range(0, count, 5000):
        with database.atomic():
            Conversation.insert_many(rows[start : start + 5000]).execute()

    return user


def _queued(redis_url: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    ids = client.lrange(f"{REDIS_NAMESPACE}:{QUEUE}", 0, -1)
    bodies = client.hgetall(f"{REDIS_NAMESPACE}:{QUEUE}.msgs")
    client.close()
    return [json.loads(bodies[message_id]) for message_id in ids]


def _declare(broker: dramatiq.Broker) -> dramatiq.Actor[Any, Any]:
    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def score_conversation(conversation_id: int, user_id: int) -> None:
        """Stand-in for an actor that works on one conversation."""

    return score_conversation


@pytest.mark.slow
def test_backfill_100k_once_at_rate(redis_broker: dramatiq.Broker, redis_url: str) -> None:
    # Given 100,000 conversations and a limit of 20,000 messages a second
    actor = _declare(redis_broker)
    user = _conversations(100_000)
    plan = plan_backfill(actor, Filters(user_id=user.id))
    backfill = create_backfill(plan, rate_per_s=20_000, requested_by="test")

    # When the backfill is stopped after 40 batches and then resumed
    batches = iter(range(10**6))
    paused = run_backfill(redis_broker, backfill, batch_size=1000, rate_per_s=20_000, should_stop=lambda: next(batches) >= 40)
    assert paused.status == "paused"
    done = run_backfill(redis_broker, Backfill.get_by_id(backfill.id), batch_size=1000, rate_per_s=20_000)

    # Then every conversation is queued exactly once
    messages = _queued(redis_url)
    targets = [message["kwargs"]["conversation_id"] for message in messages]
    assert done.status == "done"
    assert done.sent == 100_000
    assert len(targets) == 100_000
    assert len(set(targets)) == 100_000

    # And the second run's send rate stays within the limit plus one batch
    stamps = sorted(message["message_timestamp"] for message in messages[40_000:])
    span_s = (stamps[-1] - stamps[0]) / 1000
    assert (len(stamps) - 1000) / span_s <= 20_000 * 1.02


def test_backfill_crash_before_cursor_resends_nothing(
    redis_broker: dramatiq.Broker, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a backfill whose process dies after enqueuing batch 3 but before saving its cursor
    actor = _declare(redis_broker)
    user = _conversations(2_500)
    backfill = create_backfill(plan_backfill(actor, Filters(user_id=user.id)), rate_per_s=None, requested_by="test")
    advance = backfill_run._advance
    calls = iter(range(100))

    def crash_on_third(*args: Any) -> None:
        if next(calls) == 2:
            raise KeyboardInterrupt

        advance(*args)

    monkeypatch.setattr(backfill_run, "_advance", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_backfill(redis_broker, backfill, batch_size=500)

    assert Backfill.get_by_id(backfill.id).sent == 1000

    # When it is resumed
    monkeypatch.setattr(backfill_run, "_advance", advance)
    done = run_backfill(redis_broker, Backfill.get_by_id(backfill.id), batch_size=500)

    # Then no conversation was queued twice
    targets = [message["kwargs"]["conversation_id"] for message in _queued(redis_url)]
    assert len(targets) == 2_500
    assert len(set(targets)) == 2_500
    assert done.sent == 2_500
    client = redis.Redis.from_url(redis_url)
    assert not client.exists(sent_set_key(backfill.id))
    client.close()


def test_backfill_message_ids_deterministic(redis_broker: dramatiq.Broker, redis_url: str) -> None:
    actor = _declare(redis_broker)
    user = _conversations(3)
    backfill = create_backfill(plan_backfill(actor, Filters(user_id=user.id)), rate_per_s=None, requested_by="test")

    run_backfill(redis_broker, backfill)

    ids = {message["message_id"] for message in _queued(redis_url)}
    expected = {backfill_run.message_id_for(backfill.id, str(row.id)) for row in Conversation.select()}
    assert ids == expected


def test_backfill_embedded_user_days(stub_broker: dramatiq.Broker, db: peewee.Database) -> None:
    # Given two users and an actor that takes a user and a day
    seen: list[tuple[int, str]] = []

    @dramatiq.actor(queue_name=QUEUE, max_retries=0)
    def summarize_day(user_id: int, day: str) -> None:
        seen.append((user_id, day))

    first = User.create(email="ana@example.com")
    second = User.create(email="bob@example.com")
    filters = Filters(all_users=True, since=date(2026, 3, 1), until=date(2026, 3, 3))
    plan = plan_backfill(summarize_day, filters)

    # When it is backfilled on the in-process broker
    backfill = create_backfill(plan, rate_per_s=None, requested_by="test")
    done = run_backfill(stub_broker, backfill, batch_size=2)

    # Then each user-day ran once, in key order, and the run is in the audit log
    assert plan.kind == "user_day"
    assert plan.total == 6
    assert seen == [(user.id, f"2026-03-0{day}") for user in (first, second) for day in (1, 2, 3)]
    assert done.cursor == json.dumps([second.id, "2026-03-03"], separators=(",", ":"))
    assert JobRun.select().where(JobRun.actor == "summarize_day").count() == 6
    actions = [entry.action for entry in AuditLog.select().order_by(AuditLog.id)]
    assert actions == ["backfill.started", "backfill.finished"]


def test_backfill_resume_after_cursor(stub_broker: dramatiq.Broker, db: peewee.Database) -> None:
    seen: list[str] = []

    @dramatiq.actor(queue_name=QUEUE, max_retries=0)
    def close_day(day: str) -> None:
        seen.append(day)

    plan = plan_backfill(close_day, Filters(since=date(2026, 3, 1), until=date(2026, 3, 5)))
    backfill = create_backfill(plan, rate_per_s=None, requested_by="test")
    checks = iter(range(100))
    paused = run_backfill(stub_broker, backfill, batch_size=2, should_stop=lambda: next(checks) >= 1)

    run_backfill(stub_broker, Backfill.get_by_id(backfill.id), batch_size=2)

    assert paused.sent == 2
    assert seen == ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"]


def test_backfill_channel_filter(stub_broker: dramatiq.Broker, db: peewee.Database) -> None:
    actor = _declare(stub_broker)
    user = _conversations(3, "gmail")
    _conversations(2, "whatsapp")

    plan = plan_backfill(actor, Filters(all_users=True, channel="gmail"))

    assert plan.total == 3
    assert user.id is not None


def test_backfill_needs_user_choice(stub_broker: dramatiq.Broker, db: peewee.Database) -> None:
    actor = _declare(stub_broker)

    with pytest.raises(InvalidArguments, match="--all-users"):
        plan_backfill(actor, Filters())


def test_backfill_rejects_actor_without_target(stub_broker: dramatiq.Broker, db: peewee.Database) -> None:
    @dramatiq.actor(queue_name=QUEUE)
    def sweep() -> None:
        """Takes no target."""

    with pytest.raises(InvalidArguments, match="nothing to backfill"):
        plan_backfill(sweep, Filters())


def test_pacer_spaces_batches() -> None:
    # Given a fake clock and a rate of 10 messages a second
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    pacer = Pacer(10, clock=lambda: now[0], sleep=sleep)

    # When three batches of 5 go
    for _ in range(3):
        pacer.wait(5)

    # Then message i leaves no earlier than i / 10 seconds after the start
    assert now[0] == pytest.approx(1.4)
    assert len(sleeps) == 3
