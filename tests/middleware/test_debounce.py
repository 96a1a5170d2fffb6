from __future__ import annotations

import os
import time
from collections.abc import Iterator

import dramatiq
import pytest
import redis

from tests.middleware.workers import ROOT, dramatiq_workers
from wallie.broker import run_embedded
from wallie.db.models import JobRun
from wallie.middleware.debounce import DebounceOptions
from wallie.settings import Settings


def test_burst_runs_once_with_the_last_arguments_in_process(stub_broker: dramatiq.Broker) -> None:
    calls = []

    @dramatiq.actor(broker=stub_broker, debounce=DebounceOptions("conversation_id", 600_000, 3_600_000))
    def rescore(conversation_id: int, version: int) -> None:
        calls.append((conversation_id, version))

    messages = [rescore.send(7, version) for version in range(50)]
    rescore.send(8, 0)
    run_embedded(stub_broker)

    assert sorted(calls) == [(7, 49), (8, 0)]
    skipped = JobRun.select().where(JobRun.status == "skipped")
    assert skipped.count() == 49
    assert skipped.first().reason == f"Superseded by message {messages[-1].message_id}."


def test_message_option_turns_debounce_off(stub_broker: dramatiq.Broker) -> None:
    calls = []

    @dramatiq.actor(broker=stub_broker, debounce=DebounceOptions("conversation_id", 600_000, 3_600_000))
    def rescore(conversation_id: int) -> None:
        calls.append(conversation_id)

    rescore.send(1)
    rescore.send(1)
    rescore.send_with_options(args=(1,), debounce=False)
    run_embedded(stub_broker)

    assert calls == [1, 1]


@pytest.mark.parametrize(("quiet_ms", "max_wait_ms"), [(0, 10), (100, 50)])
def test_invalid_periods_are_rejected(quiet_ms: int, max_wait_ms: int) -> None:
    with pytest.raises(ValueError, match="got"):
        DebounceOptions("conversation_id", quiet_ms, max_wait_ms)


@pytest.fixture
def workers(redis_settings: Settings, db) -> Iterator[redis.Redis]:
    """Three worker processes on a real Redis running the debounced test actor."""
    env = {
        **os.environ,
        "REDIS_URL": redis_settings.redis_url or "",
        "DATABASE_URL": redis_settings.database_url,
        "WALLIE_HOME": str(redis_settings.home),
        "PYTHONPATH": str(ROOT),
    }
    with dramatiq_workers("tests.middleware.debounce_actors", 3, env=env,
                          folder=redis_settings.home, threads=2):
        yield redis.Redis.from_url(redis_settings.redis_url or "")


def _sender(redis_settings: Settings) -> dramatiq.Actor:
    os.environ["REDIS_URL"] = redis_settings.redis_url or ""
    from wallie.broker import reset_broker, setup_broker

    reset_broker()
    broker = setup_broker(redis_settings)

    @dramatiq.actor(broker=broker, actor_name="rescore",
                    debounce=DebounceOptions("conversation_id", 800, 2500))
    def rescore(conversation_id: int, version: int) -> None:
        raise AssertionError("runs only in the worker processes")

    return rescore


def _wait_for_calls(client: redis.Redis, key: str, count: int, timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    calls: list[int] = []
    while time.monotonic() < deadline:
        calls = [int(value) for value in client.lrange(key, 0, -1)]
        if len(calls) >= count:
            break
        time.sleep(0.1)

    return calls


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_burst_on_redis_with_three_workers_runs_once(redis_settings: Settings, workers: redis.Redis,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_settings.redis_url or "")
    rescore = _sender(redis_settings)

    # When 50 messages for one key are sent in a burst
    for version in range(50):
        rescore.send(1, version)

    # Then exactly one runs, with the last arguments, once the key is quiet
    calls = _wait_for_calls(workers, "calls:1", 1, timeout_s=30)
    time.sleep(2)
    assert [int(value) for value in workers.lrange("calls:1", 0, -1)] == [49]
    assert calls == [49]


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_steady_stream_runs_at_the_maximum_wait(redis_settings: Settings, workers: redis.Redis,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_settings.redis_url or "")
    rescore = _sender(redis_settings)

    # When a message comes every 200 ms for 6 seconds, never quiet for 800 ms
    for version in range(30):
        rescore.send(2, version)
        time.sleep(0.2)

    # Then it ran during the stream, at the maximum wait of 2.5 s, and once at the end
    calls = _wait_for_calls(workers, "calls:2", 3, timeout_s=30)
    time.sleep(2)
    calls = [int(value) for value in workers.lrange("calls:2", 0, -1)]
    assert 2 <= len(calls) <= 4
    assert calls == sorted(calls)
    assert calls[-1] == 29
    assert calls[0] < 29
