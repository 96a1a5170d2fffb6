"""Run history: one ``job_run`` row per message attempt."""

from __future__ import annotations

import atexit
import functools
import inspect
import re
import threading
import time
from typing import Any

import dramatiq
import peewee
from dramatiq.broker import MessageProxy
from dramatiq.common import q_name
from dramatiq.middleware import Middleware

from ..db.fields import utcnow
from ..db.models import JobRun
from ..errors import WallieError
from ..logging import get_logger

#: Argument names whose values are replaced by ``"[redacted]"`` in the history.
SECRET_NAME = re.compile(r"token|secret|password|passwd|api_?key|authorization|cookie", re.I)

#: Statuses a run moves through; a later status never goes back to an earlier one.
#: A delayed or deferred attempt comes back under the same message id and
#: attempt number, often in another worker process. So the status that ends
#: it can reach the database before its "delayed" event, and must stay.
STATUS_RANK = {"enqueued": 0, "running": 1, "delayed": 2, "deferred": 2}

#: Rank of the statuses that end an attempt: succeeded, retrying, failed, skipped.
FINAL_RANK = 3

#: Status given to a run that ended without error.
FINAL_OK = "succeeded"

#: How long events wait in memory before they are written, in milliseconds.
DEFAULT_FLUSH_INTERVAL_MS = 200

#: Maximum number of events a process keeps in memory while writes fail.
#: Failed events past it are dropped, and an error logs how many.
MAX_PENDING_EVENTS = 50_000

#: Value that replaces a secret argument in the stored history.
REDACTED = "[redacted]"


def set_outcome(message: dramatiq.Message[Any], status: str, reason: str) -> None:
    """Tell run history how the current attempt of ``message`` ended.

    Middleware that skips, delays or defers a message calls this before it
    raises :class:`~dramatiq.middleware.SkipMessage`, so the run shows the
    status (``skipped``, ``delayed``, ``deferred`` ...) with its reason.
    """
    message.options["wallie_outcome"] = [status, reason]


def note(message: dramatiq.Message[Any], reason: str) -> None:
    """Attach ``reason`` to the current attempt of ``message`` without changing its status.

    The glass ceiling uses it to say why a run went down a degraded path.
    """
    message.options["wallie_note"] = reason


def redact(value: Any, name: str = "") -> Any:
    """Return ``value`` with every entry under a secret-looking name redacted."""
    if name and SECRET_NAME.search(name):
        return REDACTED

    if isinstance(value, dict):
        return {key: redact(item, str(key)) for key, item in value.items()}

    if isinstance(value, list | tuple):
        return [redact(item) for item in value]

    return value


#: Attribute under which a consumed message caches its bound arguments, so
#: the middleware of one attempt binds them once.
_ARGUMENTS_ATTRIBUTE = "_wallie_arguments"

#: Attribute under which a consumed message caches its run fields.
_FIELDS_ATTRIBUTE = "_wallie_run_fields"


@functools.lru_cache(maxsize=1024)
def _signature(fn: Any) -> inspect.Signature:
    return inspect.signature(fn)


def bound_arguments(broker: dramatiq.Broker, message: Any) -> dict[str, Any]:
    """Return the message's arguments by parameter name, or {} if they do not fit.

    The result is cached on a consumed message (a ``MessageProxy``), so every
    middleware of one attempt shares one binding; callers must not change it.
    """
    cached = getattr(message, "__dict__", {}).get(_ARGUMENTS_ATTRIBUTE)
    if cached is not None:
        return cached

    try:
        actor = broker.get_actor(message.actor_name)
        arguments = dict(_signature(actor.fn).bind(*message.args, **message.kwargs).arguments)
    except (dramatiq.ActorNotFound, TypeError):
        arguments = {}

    if isinstance(message, MessageProxy):
        setattr(message, _ARGUMENTS_ATTRIBUTE, arguments)

    return arguments


def _redacted_args(broker: dramatiq.Broker, message: Any) -> tuple[list, dict]:
    names = list(bound_arguments(broker, message))
    args = [
        redact(value, names[index] if index < len(names) else "")
        for index, value in enumerate(message.args)
    ]
    return args, redact(dict(message.kwargs))


def _user_id(broker: dramatiq.Broker, message: Any) -> int | None:
    value = bound_arguments(broker, message).get("user_id")
    return value if isinstance(value, int) else None


def _message_fields(broker: dramatiq.Broker, message: Any) -> dict[str, Any]:
    """Return the run fields that stay the same through one attempt.

    A consumed message caches them, so the attempt's ``running`` and final
    events redact its arguments once.
    """
    cached = getattr(message, "__dict__", {}).get(_FIELDS_ATTRIBUTE)
    if cached is not None:
        return cached

    args, kwargs = _redacted_args(broker, message)
    fields = {
        "message_id": message.message_id,
        "actor": message.actor_name,
        "queue": q_name(message.queue_name),
        "user_id": _user_id(broker, message),
        "args": args,
        "kwargs": kwargs,
        "replay_of": message.options.get("replay_of"),
    }
    if isinstance(message, MessageProxy):
        setattr(message, _FIELDS_ATTRIBUTE, fields)

    return fields


def _public_options(options: dict[str, Any]) -> dict[str, Any]:
    hidden = {"traceback", "wallie_outcome", "wallie_note"}
    return {key: value for key, value in options.items() if key not in hidden}


class RunHistory(Middleware):
    """Record every attempt of every message in the ``job_run`` table.

    Each hook queues an event; a background thread writes the queued events
    every ``flush_interval_ms`` milliseconds as one batch of upserts keyed by
    ``(message_id, attempt)``, so recording costs the worker a dictionary
    update rather than a database round trip.  With ``flush_interval_ms=0``
    every event is written at once (the embedded default and tests).

    A status never moves back: an ``enqueued`` event that reaches the
    database after the worker's ``running`` event leaves ``running`` in place,
    and a ``delayed`` event written after the delayed copy succeeded leaves
    ``succeeded``.  Events that fail to write are kept for the next flush.

    Parameters:
      flush_interval_ms: Delay between batch writes, in milliseconds.

    Note:
      Events still in memory when a process is killed with SIGKILL are lost;
      the message itself is not, because Dramatiq acknowledges it
      separately.  A clean shutdown, ``atexit`` and :meth:`flush` write them.
    """

    def __init__(self, *, flush_interval_ms: int = DEFAULT_FLUSH_INTERVAL_MS) -> None:
        if flush_interval_ms < 0:
            raise ValueError(
                f"flush_interval_ms must be 0 or more (got {flush_interval_ms})."
            )

        self.logger = get_logger(__name__, type(self).__name__)
        self.flush_interval_ms = flush_interval_ms
        self._pending: dict[tuple[str, int], dict[str, Any]] = {}
        self._lock = threading.Lock()
        # Attempt number and start time of each message being processed, by
        # the identity of its proxy: the retry of a message can start before
        # the previous attempt is acknowledged, so the message id is not enough.
        self._attempts: dict[int, tuple[int, float]] = {}
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None
        atexit.register(self.flush)

    # Hooks.

    def after_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int) -> None:
        attempt = message.options.get("retries", 0)
        self._record(broker, message, attempt, status="enqueued", enqueued_at=utcnow())

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        attempt = message.options.get("retries", 0)
        self._attempts[id(message)] = (attempt, time.monotonic())
        self._record(broker, message, attempt, status="running", started_at=utcnow())

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is None:
            self._finish(broker, message, FINAL_OK)
            return

        # Retries runs after this hook (Dramatiq calls "after" hooks in reverse
        # order), so whether this attempt was the last is only known when the
        # message is nacked: until then the attempt counts as retrying.
        text = exception.stored_text() if isinstance(exception, WallieError) else str(exception)
        error = {"error_type": type(exception).__name__, "error": text[:4000]}
        self._finish(broker, message, "retrying", **error)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._finish(broker, message, "skipped", reason="Skipped by middleware.")

    def after_ack(self, broker: dramatiq.Broker, message: Any) -> None:
        self._attempts.pop(id(message), None)

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        attempt, _ = self._attempts.pop(id(message), (None, 0.0))
        if attempt is not None:
            self._record(broker, message, attempt, status="failed")

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.flush()

    # Recording.

    def _finish(self, broker: dramatiq.Broker, message: Any, status: str, **fields: Any) -> None:
        attempt, started = self._attempts.get(
            id(message), (message.options.get("retries", 0), time.monotonic())
        )
        reason = message.options.pop("wallie_note", None)
        if reason:
            fields["reason"] = reason

        outcome = message.options.pop("wallie_outcome", None)
        if outcome:
            status, fields["reason"] = outcome

        duration_ms = int((time.monotonic() - started) * 1000)
        self._record(
            broker,
            message,
            attempt,
            status=status,
            finished_at=utcnow(),
            duration_ms=duration_ms,
            **fields,
        )

    def _record(
        self, broker: dramatiq.Broker, message: Any, attempt: int, **fields: Any
    ) -> None:
        event = {
            **_message_fields(broker, message),
            "attempt": attempt,
            "options": _public_options(message.options),
            **fields,
        }
        key = (message.message_id, attempt)
        with self._lock:
            self._pending[key] = _merge(self._pending.get(key), event)

        if self.flush_interval_ms == 0:
            self.flush()
        else:
            self._ensure_flusher()

    def flush(self) -> None:
        """Write every queued event now."""
        with self._lock:
            events, self._pending = list(self._pending.values()), {}

        if not events:
            return

        try:
            _upsert(events)
        except peewee.PeeweeException:
            self._write_one_by_one(events)

    def _write_one_by_one(self, events: list[dict[str, Any]]) -> None:
        """Write events after their batch failed: drop the ones the database rejects.

        An event that fails alone with a data or integrity error, such as a
        user id out of the column's range, would fail every later batch too,
        so it is dropped. Any other error (a lost connection, a locked or
        missing table) keeps that event and the rest for the next flush.
        """
        for index, event in enumerate(events):
            try:
                _upsert([event])
            except (peewee.DataError, peewee.IntegrityError):
                self.logger.exception(
                    "Failed to write the run history of message %r, attempt %d. "
                    "The database rejected it, so it is dropped.",
                    event["message_id"], event["attempt"],
                )
            except peewee.PeeweeException:
                self._keep_for_next_flush(events[index:])
                return

    def _keep_for_next_flush(self, events: list[dict[str, Any]]) -> None:
        """Queue events that failed to write for the next flush, up to the maximum."""
        with self._lock:
            room = MAX_PENDING_EVENTS - len(self._pending)
            requeued = events[:max(room, 0)]
            for event in requeued:
                key = (event["message_id"], event["attempt"])
                newer = self._pending.get(key)
                self._pending[key] = event if newer is None else _merge(event, newer)

        dropped = len(events) - len(requeued)
        if dropped:
            self.logger.exception(
                "Failed to write %d run history events. Dropped %d of them, because "
                "%d events are already waiting.", len(events), dropped, MAX_PENDING_EVENTS,
            )
        else:
            self.logger.exception(
                "Failed to write %d run history events. They are kept for the next write.",
                len(events),
            )

    def _ensure_flusher(self) -> None:
        if self._flusher is not None and self._flusher.is_alive():
            return

        self._flusher = threading.Thread(
            target=self._flush_forever, name="wallie-run-history", daemon=True
        )
        self._flusher.start()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.flush_interval_ms / 1000)
            self.flush()


def _rank(status: str | None) -> int:
    return STATUS_RANK.get(status or "", FINAL_RANK)


def _merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Merge two events of one attempt; fields set later win, status never goes back."""
    if old is None:
        return new

    merged = {**old, **{key: value for key, value in new.items() if value is not None}}
    if _rank(new["status"]) < _rank(old["status"]):
        merged["status"] = old["status"]

    return merged


#: Columns an event may fill; every other column is set on insert only.
#: The start and end of an attempt's latest run win, whichever event is
#: written last. The duration, options and texts follow the status.
_LATEST_COLUMNS = ("started_at", "finished_at")
_STATUS_COLUMNS = ("duration_ms",)
_TEXT_COLUMNS = ("reason", "error_type", "error")

#: Rows written by one ``INSERT`` statement; 50 rows of 17 columns stay far
#: below SQLite's smallest limit of 999 parameters per statement.
UPSERT_CHUNK_ROWS = 50

#: Columns of an upserted row, in the order of the statement's parameters.
_COLUMNS = tuple(field for field in JobRun._meta.sorted_fields if field.name != "id")


def _upsert(events: list[dict[str, Any]]) -> None:
    database = JobRun._meta.database
    template = _upsert_template(database)
    # Rows in key order: two workers that write overlapping rows lock them in
    # the same order, which avoids deadlocks between their batches.
    events = sorted(events, key=lambda event: (event["message_id"], event["attempt"]))
    rows = [_row_values(event) for event in events]
    with database.atomic():
        for start in range(0, len(rows), UPSERT_CHUNK_ROWS):
            chunk = rows[start : start + UPSERT_CHUNK_ROWS]
            head, group, tail, update_params = template
            sql = head + ", ".join([group] * len(chunk)) + tail
            params = [value for row in chunk for value in row] + update_params
            database.execute_sql(sql, params)


def _row_values(event: dict[str, Any]) -> list[Any]:
    row = {**_ROW_DEFAULTS, **event}
    return [field.db_value(row[field.name]) for field in _COLUMNS]


_templates: dict[str, tuple[str, str, str, list[Any]]] = {}


def _upsert_template(database: peewee.Database) -> tuple[str, str, str, list[Any]]:
    """Return the upsert statement of one row, split around its ``VALUES`` group.

    Peewee builds the statement once per database kind; each flush repeats
    the one-row placeholder group per row.  Building every row through
    peewee's query compiler cost about 0.3 milliseconds a row, more than a
    no-op message takes to run.
    """
    # Models are bound through a proxy; the statement depends on the database behind it.
    key = type(getattr(database, "obj", None) or database).__name__
    template = _templates.get(key)
    if template is not None:
        return template

    sample = [field.db_value(None) if field.null else "" for field in _COLUMNS]
    query = JobRun.insert_many([tuple(sample)], fields=list(_COLUMNS)).on_conflict(
        conflict_target=[JobRun.message_id, JobRun.attempt], update=_update_clause()
    )
    sql, params = database.get_sql_context().sql(query).query()
    start = sql.index(" VALUES (") + len(" VALUES ")
    end = sql.index(")", start) + 1
    template = (sql[:start], sql[start:end], sql[end:], list(params[len(_COLUMNS) :]))
    _templates[key] = template
    return template


def _update_clause() -> dict[Any, Any]:
    excluded = peewee.EXCLUDED
    # True when the new event's status ranks below the stored one, so the
    # event is older than the stored fields and must not replace them.
    older = _rank_sql(excluded.status) < _rank_sql(JobRun.status)
    update: dict[Any, Any] = {
        JobRun.status: peewee.Case(None, ((older, JobRun.status),), excluded.status),
        JobRun.options: peewee.Case(None, ((older, JobRun.options),), excluded.options),
        JobRun.enqueued_at: peewee.fn.COALESCE(excluded.enqueued_at, JobRun.enqueued_at),
    }
    for name in _LATEST_COLUMNS:
        field = JobRun._meta.fields[name]
        new = getattr(excluded, name)
        update[field] = peewee.Case(None, ((field.is_null() | (new > field), new),), field)

    for name in _STATUS_COLUMNS:
        field = JobRun._meta.fields[name]
        new = getattr(excluded, name)
        update[field] = peewee.Case(None, ((older | new.is_null(), field),), new)

    for name in _TEXT_COLUMNS:
        field = JobRun._meta.fields[name]
        new = getattr(excluded, name)
        update[field] = peewee.Case(None, ((older | (new == ""), field),), new)

    return update


def _rank_sql(status: Any) -> Any:
    """Return the SQL of :func:`_rank` for a status column."""
    return peewee.Case(status, tuple(STATUS_RANK.items()), FINAL_RANK)


_ROW_DEFAULTS: dict[str, Any] = {
    "enqueued_at": None,
    "started_at": None,
    "finished_at": None,
    "duration_ms": None,
    "reason": "",
    "error_type": "",
    "error": "",
}
