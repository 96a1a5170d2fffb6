"""The broker and its middleware stack, set up in one place.

With ``REDIS_URL`` set, messages go through a :class:`RedisBroker`.
Without it (the embedded default) they go through Dramatiq's in-process
:class:`StubBroker`, and :func:`run_embedded` processes them in this process
through the same middleware.

The stack is Dramatiq's defaults (AgeLimit, TimeLimit,
ShutdownNotifications, Callbacks, Pipelines, Retries) followed by, in
order: CurrentMessage, periodiq's middleware, RunHistory, DeletedUsers,
Debounce, then GlassCeiling.  Dramatiq calls
"before" hooks in that order and "after" hooks in the reverse order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Middleware, default_middleware
from periodiq import PeriodiqMiddleware

from .db import connect
from .logging import get_logger
from .middleware.db_connection import DatabaseConnection
from .middleware.debounce import Debounce
from .middleware.deleted_users import DEFAULT_REFRESH_INTERVAL_MS, DeletedUsers
from .middleware.glass_ceiling import GlassCeiling
from .middleware.run_history import DEFAULT_FLUSH_INTERVAL_MS, RunHistory
from .schedule import QUEUE_WAIT_LIMIT_S
from .settings import Settings, get_settings

logger = get_logger(__name__)

#: Dramatiq's Redis key namespace, kept at its default so operators'
#: existing tools (``dramatiq-dashboard``, ``redis-cli``) find the queues.
REDIS_NAMESPACE = "dramatiq"

_lock = threading.Lock()
_broker: dramatiq.Broker | None = None
_declared: list[dramatiq.Actor[Any, Any]] = []


class _ReturnValueNoticeFilter(logging.Filter):
    """Drop Dramatiq's warning that an actor's return value is discarded.

    Actors return a short summary (a status, counts) for code that calls
    them directly.  Run history records every outcome, so the Results
    middleware is not installed, and the warning would repeat on every run.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned a value that is not None" not in str(record.msg)


def _quiet_return_value_notices() -> None:
    worker_logger = logging.getLogger("dramatiq.worker.WorkerThread")
    if not any(isinstance(item, _ReturnValueNoticeFilter) for item in worker_logger.filters):
        worker_logger.addFilter(_ReturnValueNoticeFilter())


def build_middleware(settings: Settings) -> list[Middleware]:
    """Return the middleware stack, in the order the broker runs it."""
    # The embedded default writes run history at once and checks deleted
    # users on every message, so a command reads back its own writes.
    # Workers batch the writes and cache the list of deleted users.
    flush_interval_ms = 0 if settings.embedded else DEFAULT_FLUSH_INTERVAL_MS
    refresh_interval_ms = 0 if settings.embedded else DEFAULT_REFRESH_INTERVAL_MS
    stack: list[Middleware] = [DatabaseConnection()]
    stack += [middleware() for middleware in default_middleware]
    stack += [
        CurrentMessage(),
        PeriodiqMiddleware(skip_delay=QUEUE_WAIT_LIMIT_S),
        RunHistory(flush_interval_ms=flush_interval_ms),
        DeletedUsers(refresh_interval_ms=refresh_interval_ms),
        Debounce(),
        GlassCeiling(settings),
    ]
    if settings.embedded:
        stack.append(EmbeddedBackoff())
    return stack


class EmbeddedBackoff(Middleware):
    """Cap the wait between retries when jobs run inside a command.

    Actors back off for minutes between retries so that a worker fleet rides
    out a provider outage.  The embedded default runs the jobs before the
    command exits, so those waits would hold the operator's terminal for
    up to half an hour on a job that cannot succeed.  Here each retry waits
    at most :attr:`MAX_BACKOFF_MS`.  A delay that an actor sets itself with
    ``Retry(delay=...)``, such as a provider's ``Retry-After``, is kept.
    """

    #: Maximum wait between two attempts of one embedded job, in milliseconds.
    MAX_BACKOFF_MS = 2_000

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        actor = broker.get_actor(message.actor_name)
        for option in ("min_backoff", "max_backoff"):
            current = message.options.get(option, actor.options.get(option))
            capped = self.MAX_BACKOFF_MS if current is None else min(current, self.MAX_BACKOFF_MS)
            message.options[option] = capped


def make_broker(settings: Settings) -> dramatiq.Broker:
    """Create the broker that ``settings`` call for, with the full stack."""
    middleware = build_middleware(settings)
    _quiet_return_value_notices()
    if settings.redis_url is None:
        broker: dramatiq.Broker = StubBroker(middleware=middleware)
        broker.emit_after("process_boot")
        return broker

    return RedisBroker(
        url=settings.redis_url, middleware=middleware, namespace=REDIS_NAMESPACE
    )


def setup_broker(settings: Settings | None = None) -> dramatiq.Broker:
    """Connect the database and install the process-wide broker, once.

    Every caller (the ``actors`` package, ``wallie-cli``, tests) goes through
    here, so the stack is the same whichever process sends or runs messages.
    """
    global _broker

    if settings is None:
        settings = get_settings()

    with _lock:
        if _broker is None:
            connect(settings)
            _broker = make_broker(settings)
            dramatiq.set_broker(_broker)
            for actor in _declared:
                actor.broker = _broker
                _broker.declare_actor(actor)

            kind = "Redis" if settings.redis_url else "in-process"
            logger.debug("Installed the %s broker.", kind)

    return _broker


def reset_broker() -> None:
    """Close the installed broker; the next :func:`setup_broker` makes a new one.

    The actors of the ``actors`` package declared on the old broker are
    declared again on the new one, so tests and tools can switch between
    the in-process broker and Redis without importing those modules again.
    Actors declared anywhere else (in tests) are dropped.
    """
    global _broker

    with _lock:
        if _broker is not None:
            actors = [_broker.get_actor(name) for name in _broker.get_declared_actors()]
            _declared[:] = [actor for actor in actors if _is_product_actor(actor)]
            _broker.close()

        _broker = None


def _is_product_actor(actor: dramatiq.Actor[Any, Any]) -> bool:
    module = actor.fn.__module__
    return module == "actors" or module.startswith("actors.")


def get_run_history(broker: dramatiq.Broker) -> RunHistory | None:
    """Return the broker's :class:`RunHistory` middleware, if installed."""
    for middleware in broker.middleware:
        if isinstance(middleware, RunHistory):
            return middleware

    return None


@contextmanager
def embedded_worker(
    broker: dramatiq.Broker, *, worker_threads: int = 1
) -> Iterator[dramatiq.Worker]:
    """Run a worker on ``broker`` in this process for the duration of the block."""
    worker = dramatiq.Worker(broker, worker_threads=worker_threads, worker_timeout=100)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        history = get_run_history(broker)
        if history is not None:
            history.flush()


def run_embedded(broker: dramatiq.Broker, *, timeout_ms: int | None = None) -> None:
    """Process every message queued on the in-process broker, then return.

    Messages that actors send while running (fan-out, follow-up work) are
    processed too, because the broker's queues are joined until all are
    empty.

    Raises:
      TypeError: ``broker`` is not the in-process broker.
    """
    if not isinstance(broker, StubBroker):
        raise TypeError("run_embedded needs the in-process broker (REDIS_URL unset).")

    with embedded_worker(broker):
        _join_all(broker, timeout_ms)


def _join_all(broker: StubBroker, timeout_ms: int | None) -> None:
    while True:
        for queue_name in sorted(broker.get_declared_queues()):
            broker.join(queue_name, timeout=timeout_ms, fail_fast=False)

        if all(broker.queues[name].unfinished_tasks == 0 for name in broker.queues):
            return
