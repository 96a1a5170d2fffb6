"""Shared state, exit codes and option parsers of ``wallie-cli``."""

from __future__ import annotations

import importlib
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import dramatiq

from wallie.broker import setup_broker
from wallie.db import connect
from wallie.db.migrate import dialect_of, migrate, pending_migrations
from wallie.errors import StorageError
from wallie.settings import Settings

#: Exit code of a command that did what it was asked.
RET_OK = 0
#: Exit code when a job run by the command failed, or an operation partly failed.
RET_FAILURE = 1
#: Exit code for a usage error: unknown command, actor, option or argument.
RET_USAGE = 2
#: Exit code when a setting is invalid; the message names the variable.
RET_CONFIG = 3
#: Exit code when the database or Redis cannot be reached.
RET_UNAVAILABLE = 4


@dataclass
class CliContext:
    """State shared by every command: the settings and, once needed, the broker."""

    settings: Settings
    _broker: dramatiq.Broker | None = field(default=None, init=False)

    @property
    def broker(self) -> dramatiq.Broker:
        """The broker with every actor declared (imports the ``actors`` package)."""
        if self._broker is None:
            self.ensure_schema()
            importlib.import_module("actors")
            self._broker = setup_broker(self.settings)

        return self._broker

    def ensure_schema(self) -> None:
        """Check that the schema is current; on SQLite, bring it up to date.

        Raises:
          StorageError: PostgreSQL has pending migrations, which only the
            release process (``wallie-cli db migrate``) applies.
        """
        database = connect(self.settings)
        pending = pending_migrations(database)
        if not pending:
            return

        if dialect_of(database) == "sqlite":
            migrate(database)
            return

        raise StorageError(
            f"The database schema is {len(pending)} migration(s) behind this code. "
            "Run: wallie-cli db migrate"
        )

    @property
    def embedded(self) -> bool:
        """True when jobs run in this process because ``REDIS_URL`` is unset."""
        return self.settings.embedded


pass_context = click.make_pass_decorator(CliContext)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document instead of text."
)


def echo_json(document: Any) -> None:
    """Print ``document`` as indented JSON with sorted keys."""
    click.echo(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str))


_DURATION = re.compile(r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class DurationParamType(click.ParamType):
    """A duration such as ``500ms``, ``30s``, ``10m``, ``2h`` or ``1d``, in milliseconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value

        match = _DURATION.match(str(value))
        if match is None:
            self.fail(f"{value!r} is not a duration; use for example 500ms, 30s, 10m or 2h.")

        unit = match["unit"] or "s"
        return int(float(match["amount"]) * _UNIT_MS[unit])


class MomentParamType(click.ParamType):
    """A point in time: ISO 8601 (UTC when no offset is given) or an age like ``2h``."""

    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value

        text = str(value).strip()
        if _DURATION.match(text):
            milliseconds = DurationParamType().convert(text, param, ctx)
            return datetime.now(UTC) - timedelta(milliseconds=milliseconds)

        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{value!r} is not a time; use ISO 8601 such as 2026-12-01T08:00 "
                "or an age such as 2h or 7d."
            )

        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)

        return moment


DURATION = DurationParamType()
MOMENT = MomentParamType()


def fail(message: str, code: int = RET_FAILURE) -> None:
    """Print ``message`` to standard error and exit with ``code``."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)
