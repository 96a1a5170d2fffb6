"""Queries over run history, and replay of recorded runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dramatiq
import peewee

from .db.models import JobRun
from .errors import NotFound, WallieError
from .logging import get_logger
from .middleware.run_history import REDACTED

logger = get_logger(__name__)

#: Every status run history records.
STATUSES = (
    "enqueued",
    "running",
    "succeeded",
    "failed",
    "retrying",
    "skipped",
    "delayed",
    "deferred",
)


class ReplayRejected(WallieError):
    """Raised when a run cannot be replayed, for example because its arguments were redacted.

    Attributes:
      message_id: The message id of the run.
    """

    def __init__(self, message_id: str, reason: str) -> None:
        super().__init__(f"Run {message_id} cannot be replayed: {reason}")
        self.message_id = message_id


@dataclass(frozen=True)
class RunFilter:
    """Which runs to list: every field left as ``None`` matches all."""

    actor: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    user_id: int | None = None
    limit: int = 50


def list_runs(run_filter: RunFilter) -> list[JobRun]:
    """Return runs matching ``run_filter``, newest first."""
    query = JobRun.select()
    if run_filter.actor:
        query = query.where(JobRun.actor == run_filter.actor)

    if run_filter.status:
        query = query.where(JobRun.status == run_filter.status)

    if run_filter.user_id is not None:
        query = query.where(JobRun.user_id == run_filter.user_id)

    moment = peewee.fn.COALESCE(JobRun.finished_at, JobRun.started_at, JobRun.enqueued_at)
    if run_filter.since is not None:
        query = query.where(moment >= run_filter.since)

    if run_filter.until is not None:
        query = query.where(moment < run_filter.until)

    return list(query.order_by(moment.desc(), JobRun.id.desc()).limit(run_filter.limit))


def get_runs(message_id: str) -> list[JobRun]:
    """Return every attempt of one message, first attempt first.

    Raises:
      NotFound: No run has that message id.
    """
    runs = list(
        JobRun.select().where(JobRun.message_id == message_id).order_by(JobRun.attempt)
    )
    if not runs:
        raise NotFound("run", message_id, "List runs with: wallie-cli runs list")

    return runs


def run_as_dict(run: JobRun) -> dict[str, Any]:
    """Return ``run`` as a JSON-ready dictionary with a stable set of keys."""

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "message_id": run.message_id,
        "attempt": run.attempt,
        "actor": run.actor,
        "queue": run.queue,
        "status": run.status,
        "reason": run.reason,
        "user_id": run.user_id,
        "args": run.args,
        "kwargs": run.kwargs,
        "error_type": run.error_type,
        "error": run.error,
        "replay_of": run.replay_of,
        "enqueued_at": iso(run.enqueued_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_ms": run.duration_ms,
    }


def _contains_redacted(value: Any) -> bool:
    if value == REDACTED:
        return True

    if isinstance(value, dict):
        return any(_contains_redacted(item) for item in value.values())

    if isinstance(value, list):
        return any(_contains_redacted(item) for item in value)

    return False


def replay(broker: dramatiq.Broker, run: JobRun) -> dramatiq.Message[Any]:
    """Send a new message with the arguments of ``run``, pointing back to it.

    Raises:
      ReplayRejected: The actor no longer exists or the arguments were redacted.
    """
    try:
        actor = broker.get_actor(run.actor)
    except dramatiq.ActorNotFound as error:
        raise ReplayRejected(run.message_id, f"actor {run.actor!r} is not declared.") from error

    if _contains_redacted(run.args) or _contains_redacted(run.kwargs):
        raise ReplayRejected(
            run.message_id,
            "some arguments were redacted as secrets; send it again with wallie-cli enqueue.",
        )

    message = actor.send_with_options(
        args=tuple(run.args), kwargs=dict(run.kwargs), replay_of=run.message_id
    )
    logger.info(
        "Replayed run %r of actor %r as message %r.",
        run.message_id,
        run.actor,
        message.message_id,
    )
    return message


def runs_to_replay(actor: str | None, status: str, since: datetime | None) -> Iterable[JobRun]:
    """Return the latest attempt of each message matching the filter, oldest first."""
    latest = (
        JobRun.select(JobRun.message_id, peewee.fn.MAX(JobRun.attempt).alias("attempt"))
        .group_by(JobRun.message_id)
        .alias("latest")
    )
    query = JobRun.select().join(
        latest,
        on=(
            (JobRun.message_id == latest.c.message_id)
            & (JobRun.attempt == latest.c.attempt)
        ),
    )
    query = query.where(JobRun.status == status)
    if actor:
        query = query.where(JobRun.actor == actor)

    if since is not None:
        query = query.where(JobRun.finished_at >= since)

    return query.order_by(JobRun.finished_at)
