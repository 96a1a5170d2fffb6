"""Field types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import peewee


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTimeField(peewee.DateTimeField):
    """A point in time, stored as naive UTC and read back as aware UTC.

    Both databases store a plain ``TIMESTAMP`` column.  Aware values are
    converted to UTC before they are written; naive values are taken to be
    UTC already.  Values read back always carry ``tzinfo=UTC``, so callers
    never compare naive and aware datetimes.
    """

    def db_value(self, value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)

        return super().db_value(value)

    def python_value(self, value: Any) -> Any:
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)

        return value


class JSONField(peewee.TextField):
    """A JSON document stored as text, so SQLite and PostgreSQL agree."""

    def db_value(self, value: Any) -> Any:
        if value is None:
            return None

        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)

    def python_value(self, value: Any) -> Any:
        if value is None:
            return None

        return json.loads(value)
