from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from dramatiq.rate_limits import RateLimiterBackend
from dramatiq.rate_limits.backends import RedisBackend, StubBackend

from wallie.middleware.counters import BoundedCounters


@pytest.fixture(params=["redis", "stub"])
def backend(request: pytest.FixtureRequest) -> Iterator[RateLimiterBackend]:
    """Dramatiq's Redis backend on the test Redis, or its in-memory backend."""
    if request.param == "stub":
        yield StubBackend()
        return

    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield RedisBackend(client=client)
    client.close()


def test_counter_adds_up_to_maximum(backend: RateLimiterBackend) -> None:
    counters = BoundedCounters(backend)

    outcomes = [counters.add("counter", 2, 5, 60_000) for _ in range(3)]

    assert outcomes == [True, True, False]
    assert counters.add("counter", 1, 5, 60_000) is True
    assert counters.add("counter", 1, 5, 60_000) is False


def test_amount_over_maximum_is_rejected(backend: RateLimiterBackend) -> None:
    counters = BoundedCounters(backend)

    assert counters.add("counter", 6, 5, 60_000) is False
    assert counters.add("counter", 5, 5, 60_000) is True


def test_counter_is_shared_with_backend_incr(backend: RateLimiterBackend) -> None:
    # Given a counter that the backend's own incr has filled to 4 of 5
    assert backend.add("counter", 4, ttl=60_000)
    counters = BoundedCounters(backend)

    # When both add to it
    first = counters.add("counter", 1, 5, 60_000)
    second = backend.incr("counter", 1, maximum=5, ttl=60_000)

    # Then they count against one total
    assert first is True
    assert second is False


def test_redis_counter_gets_its_ttl(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    counters = BoundedCounters(RedisBackend(client=client))

    counters.add("counter", 1, 5, 60_000)

    assert 0 < client.pttl("counter") <= 60_000
    client.close()
