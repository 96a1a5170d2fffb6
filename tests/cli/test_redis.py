"""wallie-cli against a real Redis: enqueue, queue counts, dead letters."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import dramatiq
import pytest
from click.testing import CliRunner

from cli.main import cli
from wallie.broker import embedded_worker, reset_broker, setup_broker
from wallie.db.models import JobRun
from wallie.settings import Settings, get_settings, reset_settings

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_cli(monkeypatch: pytest.MonkeyPatch, redis_settings: Settings, db) -> Iterator[dramatiq.Broker]:
    """wallie-cli on Redis, with a test actor that fails until told otherwise."""
    monkeypatch.setenv("WALLIE_HOME", str(redis_settings.home))
    monkeypatch.setenv("DATABASE_URL", redis_settings.database_url)
    monkeypatch.setenv("REDIS_URL", redis_settings.redis_url or "")
    reset_settings()
    reset_broker()
    broker = setup_broker(get_settings())
    yield broker
    reset_broker()
    reset_settings()


def _wait_for(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)

    raise AssertionError("condition not met in time")


def test_enqueue_on_redis_prints_the_message_id(runner: CliRunner, redis_cli: dramatiq.Broker) -> None:
    @dramatiq.actor(broker=redis_cli, queue_name="sync")
    def sync_mailbox(user_id: int) -> None:
        pass

    result = runner.invoke(cli, ["enqueue", "sync_mailbox", "user_id=1", "--json"])

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["embedded"] is False
    assert document["queue"] == "sync"

    queues = json.loads(runner.invoke(cli, ["inspect", "queues", "--json"]).output)["queues"]
    assert {"name": "sync", "ready": 1, "delayed": 0, "dead": 0} in queues


def test_delayed_message_is_counted_as_delayed(runner: CliRunner, redis_cli: dramatiq.Broker) -> None:
    @dramatiq.actor(broker=redis_cli)
    def later(user_id: int) -> None:
        pass

    result = runner.invoke(cli, ["enqueue", "later", "user_id=1", "--delay", "10m"])

    assert result.exit_code == 0, result.output
    queues = json.loads(runner.invoke(cli, ["inspect", "queues", "--json"]).output)["queues"]
    assert {"name": "default", "ready": 0, "delayed": 1, "dead": 0} in queues


def test_dead_letter_is_listed_and_requeued(runner: CliRunner, redis_cli: dramatiq.Broker) -> None:
    state = {"fail": True, "runs": 0}

    @dramatiq.actor(broker=redis_cli, max_retries=0)
    def import_chat(user_id: int) -> None:
        state["runs"] += 1
        if state["fail"]:
            raise ValueError("export is not UTF-8")

    # Given a message that failed for good
    message = import_chat.send(1)
    with embedded_worker(redis_cli, worker_threads=1):
        _wait_for(lambda: state["runs"] == 1)
        _wait_for(lambda: _dead_count(runner) == 1)

    # Then it is listed with its error
    letters = json.loads(runner.invoke(cli, ["dlq", "list", "--json"]).output)["dead_letters"]
    assert [letter["message_id"] for letter in letters] == [message.message_id]
    assert "export is not UTF-8" in letters[0]["error"]

    # When it is requeued and succeeds
    state["fail"] = False
    result = runner.invoke(cli, ["dlq", "requeue", message.message_id])
    assert result.exit_code == 0, result.output
    with embedded_worker(redis_cli, worker_threads=1):
        _wait_for(lambda: state["runs"] == 2)
        _wait_for(lambda: _latest_status(message.message_id) == "succeeded")

    # Then the dead-letter queue is empty and the run history shows both attempts
    assert _dead_count(runner) == 0
    statuses = [run.status for run in JobRun.select().where(JobRun.message_id == message.message_id).order_by(JobRun.attempt)]
    assert statuses == ["failed", "succeeded"]


def test_requeue_needs_an_id_or_all(runner: CliRunner, redis_cli: dramatiq.Broker) -> None:
    result = runner.invoke(cli, ["dlq", "requeue"])

    assert result.exit_code == 2


def _dead_count(runner: CliRunner) -> int:
    queues = json.loads(runner.invoke(cli, ["inspect", "queues", "--json"]).output)["queues"]
    return sum(queue["dead"] for queue in queues)


def _latest_status(message_id: str) -> str | None:
    run = JobRun.select().where(JobRun.message_id == message_id).order_by(JobRun.attempt.desc()).first()
    return run.status if run else None
