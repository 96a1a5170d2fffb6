from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import peewee
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from periodiq import PeriodiqMiddleware, cron

from wallie.db.models import ScheduleTick
from wallie.schedule.scheduler import Scheduler
from wallie.settings import Settings

START = datetime(2026, 3, 8, 0, 0, tzinfo=UTC)


def _actors(broker: dramatiq.Broker) -> list[dramatiq.Actor[Any, Any]]:
    def every_minute() -> None:
        pass

    def hourly() -> None:
        pass

    def daily() -> None:
        pass

    return [
        dramatiq.actor(every_minute, broker=broker, queue_name="ticks", periodic=cron("* * * * *")),
        dramatiq.actor(hourly, broker=broker, queue_name="ticks", periodic=cron("0 * * * *")),
        dramatiq.actor(daily, broker=broker, queue_name="ticks", periodic=cron("30 8 * * *")),
    ]


@pytest.fixture
def stub() -> Iterator[StubBroker]:
    broker = StubBroker(middleware=[PeriodiqMiddleware()])
    broker.emit_after("process_boot")
    yield broker
    broker.close()


def _queued(broker: StubBroker) -> list[dramatiq.Message[Any]]:
    queue = broker.queues["ticks"]
    return [dramatiq.Message.decode(data) for data in list(queue.queue)]


def _minutes(start: datetime, count: int) -> Iterator[datetime]:
    for offset in range(count):
        yield start + timedelta(minutes=offset)


def test_first_start_waits_for_the_next_tick(settings: Settings, db: peewee.Database, stub: StubBroker) -> None:
    # Given no tick was ever claimed
    scheduler = Scheduler(_actors(stub), broker=stub, settings=settings)

    # When the scheduler starts at 10:20
    sent = scheduler.tick(START + timedelta(hours=10, minutes=20))

    # Then only the every-minute actor, due this very minute, is sent
    assert [tick.actor for tick in sent] == ["every_minute"]


def test_two_schedulers_send_each_tick_once(settings: Settings, db: peewee.Database, stub: StubBroker) -> None:
    actors = _actors(stub)
    first = Scheduler(actors, broker=stub, settings=settings)
    second = Scheduler(actors, broker=stub, settings=settings)

    for minute in _minutes(START, 180):
        first.tick(minute)
        second.tick(minute)

    names = [message.actor_name for message in _queued(stub)]
    assert names.count("every_minute") == 180
    assert names.count("hourly") == 3


def test_downtime_is_caught_up_once(settings: Settings, db: peewee.Database, stub: StubBroker) -> None:
    # Given a scheduler that ran until 01:00, then nothing until 05:10
    actors = _actors(stub)
    Scheduler(actors, broker=stub, settings=settings).tick(START + timedelta(hours=1))
    stub.flush_all()

    # When a new scheduler starts at 05:10
    sent = Scheduler(actors, broker=stub, settings=settings).tick(START + timedelta(hours=5, minutes=10))

    # Then the hourly actor gets one catch-up for 05:00, not four
    hourly = [tick for tick in sent if tick.actor == "hourly"]
    assert len(hourly) == 1
    assert hourly[0].tick_at == START + timedelta(hours=5)
    assert hourly[0].catch_up


def test_catch_up_message_carries_the_tick(settings: Settings, db: peewee.Database, stub: StubBroker) -> None:
    actors = _actors(stub)
    Scheduler(actors, broker=stub, settings=settings).tick(START + timedelta(hours=1))
    stub.flush_all()

    Scheduler(actors, broker=stub, settings=settings).tick(START + timedelta(hours=5, minutes=10))

    [message] = [m for m in _queued(stub) if m.actor_name == "hourly"]
    assert message.options["tick_at"] == "2026-03-08T05:00:00+00:00"
    assert message.options["scheduled_at"] == "2026-03-08T05:10:00+00:00"


def test_failed_send_is_retried_as_catch_up(settings: Settings, db: peewee.Database, stub: StubBroker) -> None:
    actors = _actors(stub)
    scheduler = Scheduler(actors, broker=stub, settings=settings)
    scheduler.tick(START)
    original = stub.enqueue

    def broken(message: dramatiq.Message[Any], **kwargs: Any) -> Any:
        raise ConnectionError("queue unreachable")

    stub.enqueue = broken  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        scheduler.tick(START + timedelta(hours=1))

    stub.enqueue = original  # type: ignore[method-assign]
    sent = scheduler.tick(START + timedelta(hours=1, minutes=1))

    assert [(tick.actor, tick.tick_at) for tick in sent if tick.actor == "hourly"] == [
        ("hourly", START + timedelta(hours=1))
    ]


@pytest.mark.redis
def test_two_redis_schedulers_in_threads_send_a_day_once(
    settings: Settings, db: peewee.Database, redis_url: str
) -> None:
    # Given two schedulers, each with its own broker connection to one Redis
    redis_settings = settings.replace(redis_url=redis_url)
    brokers = [RedisBroker(url=redis_url, namespace="dramatiq", middleware=[PeriodiqMiddleware()]) for _ in range(2)]
    schedulers = [Scheduler(_actors(broker), broker=broker, settings=redis_settings) for broker in brokers]
    day = list(_minutes(START, 24 * 60))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(scheduler: Scheduler) -> None:
        try:
            for minute in day:
                barrier.wait(timeout=30)
                scheduler.tick(minute)
        except BaseException as error:  # noqa: BLE001 - reported by the assert below
            errors.append(error)

    # When both tick every minute of a simulated day at the same time
    threads = [threading.Thread(target=run, args=(scheduler,)) for scheduler in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)

    # Then every tick is in the queue once
    client = redis.Redis.from_url(redis_url)
    messages = [dramatiq.Message.decode(raw) for raw in client.hvals("dramatiq:ticks.msgs")]
    names = [message.actor_name for message in messages]
    assert errors == []
    assert names.count("every_minute") == 24 * 60
    assert names.count("hourly") == 24
    assert names.count("daily") == 1
    assert ScheduleTick.select().where(ScheduleTick.actor == "hourly").count() == 24
    for broker in brokers:
        broker.close()
