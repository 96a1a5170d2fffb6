from __future__ import annotations

import logging

import dramatiq
import pytest

from wallie.broker import EmbeddedBackoff, run_embedded
from wallie.db.models import JobRun


def test_embedded_retry_waits_at_most_the_cap(
    stub_broker: dramatiq.Broker, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    @dramatiq.actor(broker=stub_broker, max_retries=3, min_backoff=60_000, max_backoff=600_000)
    def flaky_sync(user_id: int) -> None:
        attempts.append(user_id)
        if len(attempts) < 3:
            raise RuntimeError("provider unavailable")

    caplog.set_level(logging.INFO, logger="dramatiq.middleware.retries.Retries")
    message = flaky_sync.send(7)
    run_embedded(stub_broker)

    delays = [record.args[1] for record in caplog.records if record.msg.startswith("Retrying message")]
    assert len(attempts) == 3
    assert len(delays) == 2
    assert max(delays) <= EmbeddedBackoff.MAX_BACKOFF_MS
    statuses = [run.status for run in JobRun.select().where(JobRun.message_id == message.message_id)]
    assert "succeeded" in statuses


def test_embedded_retry_keeps_an_explicit_delay(
    stub_broker: dramatiq.Broker, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    @dramatiq.actor(broker=stub_broker, max_retries=2)
    def rate_limited(user_id: int) -> None:
        attempts.append(user_id)
        if len(attempts) < 2:
            raise dramatiq.Retry(delay=2_500)

    caplog.set_level(logging.INFO, logger="dramatiq.middleware.retries.Retries")
    rate_limited.send(7)
    run_embedded(stub_broker)

    delays = [record.args[1] for record in caplog.records if record.msg.startswith("Retrying message")]
    assert delays == [2_500]
    assert len(attempts) == 2
