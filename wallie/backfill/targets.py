"""Targets of a backfill: what an actor's signature takes, selected in a stable order.

An actor is backfilled once per conversation (it takes ``conversation_id``),
per user and day (``user_id`` and ``day``, ``date`` or ``local_date``), per
user (``user_id``) or per day.  Targets are read in
ascending key order with keyset pagination, so the key of the last target
sent (the cursor) is where a resumed backfill continues.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import dramatiq
import peewee

from ..db.models import Conversation, User
from ..errors import InvalidArguments

#: Target kinds, from the most specific parameter an actor takes.
KINDS = ("conversation", "user_day", "user", "day")

#: Parameters a backfill fills in; an actor's other parameters need a default
#: or a fixed value given with the backfill.
TARGET_PARAMETERS = ("conversation_id", "user_id", "day", "date", "local_date")


@dataclass(frozen=True)
class Filters:
    """Which targets a backfill selects; ids and dates only, never personal data.

    Parameters:
      user_id: Only this user's targets.
      all_users: Every user's targets (required when ``user_id`` is unset and
        the targets belong to users, so a forgotten ``--user`` cannot fan out).
      since: First day, inclusive.
      until: Last day, inclusive.
      channel: Only conversations of this channel.
      arguments: Fixed keyword arguments sent with every message.
    """

    user_id: int | None = None
    all_users: bool = False
    since: date | None = None
    until: date | None = None
    channel: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the filters as a JSON object."""
        document = asdict(self)
        for name in ("since", "until"):
            if document[name] is not None:
                document[name] = document[name].isoformat()

        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Filters:
        """Return the filters stored by :meth:`to_json`."""
        values = dict(document)
        for name in ("since", "until"):
            if values.get(name):
                values[name] = date.fromisoformat(values[name])

        return cls(**values)


@dataclass(frozen=True)
class Target:
    """One message to send: its key in the stable order and the actor's arguments."""

    key: Any
    kwargs: dict[str, Any]

    @property
    def key_text(self) -> str:
        """The key as JSON text, as stored in the cursor and the sent set."""
        return json.dumps(self.key, separators=(",", ":"))


def day_parameter(parameters: dict[str, inspect.Parameter]) -> str | None:
    """Return the name of the actor's date parameter, if any.

    ``local_date`` is a day in the user's own time zone (daily summaries and
    churn checks); a backfill sends the same ISO dates for it.
    """
    for name in ("day", "date", "local_date"):
        if name in parameters:
            return name

    return None


def target_kind(actor: dramatiq.Actor[Any, Any], fixed: dict[str, Any]) -> str:
    """Return the kind of targets ``actor`` is backfilled over.

    Raises:
      InvalidArguments: The actor takes none of the target parameters, or
        takes another parameter without a default that ``fixed`` lacks.
    """
    parameters = inspect.signature(actor.fn).parameters
    missing = [
        name
        for name, parameter in parameters.items()
        if name not in TARGET_PARAMETERS
        and name not in fixed
        and parameter.default is inspect.Parameter.empty
        and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if missing:
        raise InvalidArguments(
            actor.actor_name,
            f"Actor {actor.actor_name!r} also needs {', '.join(missing)}; "
            "give fixed values with --arg NAME=VALUE.",
        )

    day = day_parameter(dict(parameters))
    if "conversation_id" in parameters:
        return "conversation"

    if "user_id" in parameters:
        return "user_day" if day else "user"

    if day:
        return "day"

    raise InvalidArguments(
        actor.actor_name,
        f"Actor {actor.actor_name!r} takes none of {', '.join(TARGET_PARAMETERS)}, "
        "so there is nothing to backfill it over.",
    )


def check_filters(kind: str, filters: Filters) -> None:
    """Check that ``filters`` fit targets of ``kind``.

    Raises:
      ValueError: A filter is missing or does not apply; the message names it.
    """
    uses_users = kind != "day"
    if uses_users and filters.user_id is None and not filters.all_users:
        raise ValueError("Give --user EMAIL or --all-users.")

    if filters.user_id is not None and filters.all_users:
        raise ValueError("Give either --user or --all-users, not both.")

    if not uses_users and (filters.user_id is not None or filters.all_users):
        raise ValueError("This actor takes no user_id; drop --user and --all-users.")

    if kind in ("day", "user_day") and filters.since is None:
        raise ValueError("This actor takes a date; give --since (and --until, default today).")

    if kind == "user" and (filters.since or filters.until):
        raise ValueError("This actor takes neither a date nor a conversation; drop --since and --until.")

    if filters.channel is not None and kind != "conversation":
        raise ValueError("--channel applies only to actors that take conversation_id.")

    if filters.since and filters.until and filters.until < filters.since:
        raise ValueError(f"--until {filters.until} is before --since {filters.since}.")


def _days(filters: Filters) -> list[date]:
    assert filters.since is not None
    last = filters.until or datetime.now(UTC).date()
    return [filters.since + timedelta(days=offset) for offset in range((last - filters.since).days + 1)]


def _conversation_query(filters: Filters) -> peewee.ModelSelect:
    query = Conversation.select(Conversation.id, Conversation.user)
    if filters.user_id is not None:
        query = query.where(Conversation.user == filters.user_id)

    if filters.channel is not None:
        query = query.where(Conversation.channel == filters.channel)

    # A conversation is in the period when it was created before the period
    # ends and its last message came after the period started.
    if filters.since is not None:
        start = datetime.combine(filters.since, time(), UTC)
        query = query.where(Conversation.last_message_at >= start)

    if filters.until is not None:
        end = datetime.combine(filters.until + timedelta(days=1), time(), UTC)
        query = query.where(Conversation.created_at < end)

    return query


def _user_query(filters: Filters) -> peewee.ModelSelect:
    query = User.select(User.id)
    if filters.user_id is not None:
        query = query.where(User.id == filters.user_id)

    return query


def count_targets(kind: str, filters: Filters) -> int:
    """Return how many targets ``filters`` select."""
    if kind == "conversation":
        return _conversation_query(filters).count()

    if kind == "user":
        return _user_query(filters).count()

    if kind == "day":
        return len(_days(filters))

    return _user_query(filters).count() * len(_days(filters))


def iter_batches(
    kind: str, filters: Filters, parameters: set[str], after: Any, size: int
) -> Iterator[list[Target]]:
    """Yield the targets after cursor ``after`` in key order, ``size`` at a time.

    Parameters:
      kind: One of :data:`KINDS`.
      filters: The backfill's filters.
      parameters: The actor's parameter names, to fill only those it takes.
      after: Key of the last target sent, or None to start at the first.
      size: Targets per batch.
    """
    day_name = "day" if "day" in parameters else "date"
    fixed = filters.arguments
    if kind == "conversation":
        yield from _conversation_batches(filters, parameters, after, size)
    elif kind == "user":
        for ids in _user_id_batches(filters, after, size):
            yield [Target(user_id, {**fixed, "user_id": user_id}) for user_id in ids]
    elif kind == "day":
        days = [day.isoformat() for day in _days(filters)]
        remaining = [day for day in days if after is None or day > after]
        for start in range(0, len(remaining), size):
            chunk = remaining[start : start + size]
            yield [Target(day, {**fixed, day_name: day}) for day in chunk]
    else:
        yield from _user_day_batches(filters, day_name, after, size)


def _conversation_batches(
    filters: Filters, parameters: set[str], after: Any, size: int
) -> Iterator[list[Target]]:
    last = after
    while True:
        query = _conversation_query(filters)
        if last is not None:
            query = query.where(Conversation.id > last)

        rows = list(query.order_by(Conversation.id).limit(size).tuples())
        if not rows:
            return

        batch = []
        for conversation_id, user_id in rows:
            kwargs = {**filters.arguments, "conversation_id": conversation_id}
            if "user_id" in parameters:
                kwargs["user_id"] = user_id

            batch.append(Target(conversation_id, kwargs))

        yield batch
        last = rows[-1][0]


def _user_id_batches(filters: Filters, after: Any, size: int) -> Iterator[list[int]]:
    last = after
    while True:
        query = _user_query(filters)
        if last is not None:
            query = query.where(User.id > last)

        ids = [row[0] for row in query.order_by(User.id).limit(size).tuples()]
        if not ids:
            return

        yield ids
        last = ids[-1]


def _user_day_batches(filters: Filters, day_name: str, after: Any, size: int) -> Iterator[list[Target]]:
    days = [day.isoformat() for day in _days(filters)]
    after_user, after_day = after if after is not None else (None, None)
    start_user = None if after_user is None else after_user - 1
    batch: list[Target] = []
    for ids in _user_id_batches(filters, start_user, size):
        for user_id in ids:
            for day in days:
                if after_user is not None and user_id == after_user and day <= after_day:
                    continue

                kwargs = {**filters.arguments, "user_id": user_id, day_name: day}
                batch.append(Target([user_id, day], kwargs))
                if len(batch) >= size:
                    yield batch
                    batch = []

    if batch:
        yield batch
