from __future__ import annotations

import time
from typing import Any

import dramatiq
import peewee
import pytest
from dramatiq.middleware import Middleware, SkipMessage

from wallie.broker import get_run_history, run_embedded
from wallie.db.models import JobRun
from wallie.middleware.run_history import RunHistory, set_outcome

FAST_RETRIES = {"min_backoff": 10, "max_backoff": 20}


def _runs(message_id: str) -> list[JobRun]:
    return list(JobRun.select().where(JobRun.message_id == message_id).order_by(JobRun.attempt))


def _ping(broker: dramatiq.Broker) -> dramatiq.Actor:
    """Declare a no-op actor that takes an optional user id on ``broker``."""

    @dramatiq.actor(broker=broker)
    def ping(user_id: int = 0) -> None:
        pass

    return ping


def test_successful_run_is_recorded_with_timings(stub_broker: dramatiq.Broker) -> None:
    @dramatiq.actor(broker=stub_broker)
    def add_lead(user_id: int, name: str) -> None:
        pass

    message = add_lead.send(7, "Ana")
    run_embedded(stub_broker)

    [run] = _runs(message.message_id)
    assert run.status == "succeeded"
    assert run.actor == "add_lead"
    assert run.queue == "default"
    assert run.user_id == 7
    assert run.args == [7, "Ana"]
    assert run.attempt == 0
    assert run.enqueued_at <= run.started_at <= run.finished_at
    assert run.duration_ms >= 0


def test_each_attempt_gets_a_row_until_the_last_fails(stub_broker: dramatiq.Broker) -> None:
    @dramatiq.actor(broker=stub_broker, max_retries=2, **FAST_RETRIES)
    def flaky() -> None:
        raise ConnectionError("mail server closed the connection")

    message = flaky.send()
    run_embedded(stub_broker)

    runs = _runs(message.message_id)
    assert [run.attempt for run in runs] == [0, 1, 2]
    assert [run.status for run in runs] == ["retrying", "retrying", "failed"]
    assert runs[-1].error_type == "ConnectionError"
    assert runs[-1].error == "mail server closed the connection"


def test_retry_that_succeeds_ends_succeeded(stub_broker: dramatiq.Broker) -> None:
    calls = []

    @dramatiq.actor(broker=stub_broker, max_retries=3, **FAST_RETRIES)
    def second_time_lucky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError("slow provider")

    message = second_time_lucky.send()
    run_embedded(stub_broker)

    assert [run.status for run in _runs(message.message_id)] == ["retrying", "succeeded"]


def test_skip_is_recorded_with_its_reason(stub_broker: dramatiq.Broker) -> None:
    class SkipEverything(Middleware):
        def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
            set_outcome(message, "skipped", "Superseded by message 42.")
            raise SkipMessage()

    stub_broker.add_middleware(SkipEverything())

    @dramatiq.actor(broker=stub_broker)
    def score() -> None:
        raise AssertionError("a skipped message must not run")

    message = score.send()
    run_embedded(stub_broker)

    [run] = _runs(message.message_id)
    assert run.status == "skipped"
    assert run.reason == "Superseded by message 42."


def test_secret_arguments_are_redacted(stub_broker: dramatiq.Broker) -> None:
    @dramatiq.actor(broker=stub_broker)
    def connect_mailbox(user_id: int, access_token: str, options: dict) -> None:
        pass

    message = connect_mailbox.send(1, "ya29.secret", {"refresh_token": "1//secret", "folder": "inbox"})
    run_embedded(stub_broker)

    [run] = _runs(message.message_id)
    assert run.args == [1, "[redacted]", {"refresh_token": "[redacted]", "folder": "inbox"}]
    assert "secret" not in str(run.options)


def test_late_enqueued_event_does_not_undo_a_finished_status(stub_broker: dramatiq.Broker) -> None:
    # Given a history that buffers events, as workers on Redis do
    history = RunHistory(flush_interval_ms=10_000)

    message = _ping(stub_broker).message()
    # When the worker's events are written before the sender's enqueued event
    history.before_process_message(stub_broker, message)
    history.after_process_message(stub_broker, message)
    history.flush()
    history.after_enqueue(stub_broker, message, 0)
    history.flush()

    # Then the run stays succeeded and keeps its enqueue time
    [run] = _runs(message.message_id)
    assert run.status == "succeeded"
    assert run.enqueued_at is not None


def test_late_delay_keeps_final_status(stub_broker: dramatiq.Broker) -> None:
    # Given two worker processes that buffer their events
    first, second = RunHistory(flush_interval_ms=10_000), RunHistory(flush_interval_ms=10_000)

    message = _ping(stub_broker).message()
    # When the first delays the message to a later slot under the same id and
    # attempt, and the second runs the copy and writes its events first
    first.before_process_message(stub_broker, message)
    set_outcome(message, "delayed", "Rate limit of whatsapp (second) reached.")
    first.after_skip_message(stub_broker, message)
    copy = message.copy()
    time.sleep(0.01)
    second.before_process_message(stub_broker, copy)
    time.sleep(0.01)
    second.after_process_message(stub_broker, copy)
    second.flush()
    [ran] = _runs(message.message_id)
    first.flush()

    # Then the run stays succeeded, with the start, end and duration of the copy
    [run] = _runs(message.message_id)
    assert run.status == "succeeded"
    assert run.started_at == ran.started_at
    assert run.finished_at == ran.finished_at
    assert run.duration_ms == ran.duration_ms
    assert run.reason == ""


def test_buffered_deferral_keeps_final_status(stub_broker: dramatiq.Broker) -> None:
    # Given a worker whose events for one attempt are still in memory
    history = RunHistory(flush_interval_ms=10_000)

    message = _ping(stub_broker).message()
    # When the attempt is deferred, then runs and succeeds, then an old
    # deferral of the same attempt is queued again
    history.before_process_message(stub_broker, message)
    set_outcome(message, "deferred", "No free second slot of whatsapp in 60 windows.")
    history.after_skip_message(stub_broker, message)
    history.before_process_message(stub_broker, message)
    history.after_process_message(stub_broker, message)
    set_outcome(message, "deferred", "No free second slot of whatsapp in 60 windows.")
    history.after_skip_message(stub_broker, message)
    history.flush()

    # Then the attempt shows it succeeded
    [run] = _runs(message.message_id)
    assert run.status == "succeeded"


def test_buffered_events_are_written_on_flush(stub_broker: dramatiq.Broker) -> None:
    history = get_run_history(stub_broker)
    assert history is not None
    history.flush_interval_ms = 10_000

    @dramatiq.actor(broker=stub_broker)
    def ping() -> None:
        pass

    message = ping.send()

    assert _runs(message.message_id) == []
    history.flush()
    assert [run.status for run in _runs(message.message_id)] == ["enqueued"]


def test_failed_write_retried_next_flush(
    stub_broker: dramatiq.Broker, db: peewee.Database, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a worker that ran a message while its table could not be written
    history = RunHistory(flush_interval_ms=10_000)

    message = _ping(stub_broker).message()
    history.before_process_message(stub_broker, message)
    db.execute_sql("ALTER TABLE job_run RENAME TO job_run_away")
    try:
        history.flush()
    finally:
        db.execute_sql("ALTER TABLE job_run_away RENAME TO job_run")

    assert "kept for the next write" in caplog.text
    # When the run ends and the worker writes again
    history.after_process_message(stub_broker, message)
    history.flush()

    # Then the run is stored once, with its start and its end
    [run] = _runs(message.message_id)
    assert run.status == "succeeded"
    assert run.started_at is not None
    assert run.finished_at is not None


def test_rejected_row_does_not_block_later_rows(stub_broker: dramatiq.Broker) -> None:
    # Given a worker that ran a message whose user id PostgreSQL's integer
    # column cannot hold, then an ordinary one
    history = RunHistory(flush_interval_ms=10_000)

    ping = _ping(stub_broker)
    too_large = ping.message(2**31)
    history.before_process_message(stub_broker, too_large)
    history.after_process_message(stub_broker, too_large)
    history.flush()
    ordinary = ping.message(7)
    history.before_process_message(stub_broker, ordinary)
    history.after_process_message(stub_broker, ordinary)

    # When the worker writes again
    history.flush()

    # Then the ordinary run is stored, and nothing waits to be written
    [run] = _runs(ordinary.message_id)
    assert run.status == "succeeded"
    assert run.user_id == 7
    assert history._pending == {}


def test_negative_flush_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="got -1"):
        RunHistory(flush_interval_ms=-1)


def test_failure_text_leaves_out_quoted_chat_lines(stub_broker: dramatiq.Broker) -> None:
    from wallie.whatsapp.errors import NoMessagesError

    @dramatiq.actor(broker=stub_broker, max_retries=0)
    def import_chat(user_id: int) -> None:
        raise NoMessagesError("chat.txt", 1, "13/25/26, 9:12 AM - Ana: my card is 4111", "month 25")

    message = import_chat.send(7)
    run_embedded(stub_broker)

    [*_, run] = _runs(message.message_id)
    assert run.error_type == "NoMessagesError"
    assert "line 1" in run.error
    assert "month 25" in run.error
    assert "4111" not in run.error
