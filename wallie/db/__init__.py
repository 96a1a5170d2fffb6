"""Database connection: SQLite for the embedded default, PostgreSQL in production."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import peewee
from playhouse.db_url import connect as connect_url

from ..errors import ConfigurationError, StorageError
from ..settings import Settings, get_settings, mask_url
from .models import MODELS, database_proxy

__all__ = [
    "MODELS",
    "StorageError",
    "connect",
    "database_proxy",
    "make_database",
]

#: How long SQLite waits for another writer's lock before failing, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 10_000

#: How long an idle pooled PostgreSQL connection is kept, in seconds.
POSTGRES_STALE_TIMEOUT_S = 300

_connected_url: str | None = None


def make_database(url: str) -> peewee.Database:
    """Open (lazily) the database at ``url``.

    SQLite gets write-ahead logging, foreign keys and a busy timeout so
    several threads of one process can share the file.  PostgreSQL gets a
    connection pool, one connection per worker thread at most.

    Raises:
      ConfigurationError: The URL names a folder that does not exist.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return _make_sqlite(url)

    pooled_url = url.replace(f"{scheme}://", "postgresql+pool://", 1)
    return connect_url(
        pooled_url,
        stale_timeout=POSTGRES_STALE_TIMEOUT_S,
        max_connections=64,
    )


def _make_sqlite(url: str) -> peewee.Database:
    path = url.split("://", 1)[1]
    if path.startswith("/"):
        path = path[1:]

    if path not in ("", ":memory:"):
        folder = Path(path).expanduser().resolve().parent
        if not folder.is_dir():
            raise ConfigurationError(
                "DATABASE_URL",
                f"DATABASE_URL={mask_url(url)!r} points into {str(folder)!r}, "
                "which does not exist. Create the folder or set WALLIE_HOME.",
            )

    return peewee.SqliteDatabase(
        path or ":memory:",
        pragmas={
            "journal_mode": "wal",
            "foreign_keys": 1,
            "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
            "synchronous": "normal",
        },
    )


def connect(settings: Settings | None = None) -> peewee.Database:
    """Bind every model to the database of ``settings`` and return it.

    Calling it again with the same URL keeps the current database.
    """
    if settings is None:
        settings = get_settings()

    global _connected_url

    current = database_proxy.obj
    if current is not None and _connected_url == settings.database_url:
        return current

    database = make_database(settings.database_url)
    database_proxy.initialize(database)
    _connected_url = settings.database_url
    return database


def is_postgres(database: peewee.Database) -> bool:
    """True when ``database`` is a PostgreSQL database."""
    return isinstance(database, peewee.PostgresqlDatabase)
