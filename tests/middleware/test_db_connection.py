from __future__ import annotations

import dramatiq
import peewee
import psycopg2
import pytest
from dramatiq.broker import MessageProxy

from wallie.db import is_postgres
from wallie.middleware.db_connection import DatabaseConnection


def _message() -> MessageProxy:
    message = dramatiq.Message(
        queue_name="default", actor_name="noop", args=(), kwargs={}, options={}
    )
    return MessageProxy(message)


def _backend_pid(database: peewee.Database) -> int:
    return database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]


def _terminate(database: peewee.Database, pid: int) -> None:
    """Kill server process ``pid`` from a connection outside the pool."""
    parameters = {
        key: value for key, value in database.connect_params.items() if key != "dbname"
    }
    connection = psycopg2.connect(dbname=database.database, **parameters)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))

    connection.close()


def test_connection_stays_open_between_messages(db: peewee.Database) -> None:
    middleware = DatabaseConnection()
    message = _message()

    middleware.before_process_message(None, message)
    first = db.connection()
    middleware.after_process_message(None, message)
    middleware.before_process_message(None, message)

    assert not db.is_closed()
    assert db.connection() is first


def test_open_transaction_is_rolled_back(db: peewee.Database) -> None:
    middleware = DatabaseConnection()
    message = _message()
    middleware.before_process_message(None, message)
    db.begin()

    middleware.after_process_message(None, message)

    assert not db.in_transaction()


def test_failed_message_returns_postgres_connection(db: peewee.Database) -> None:
    middleware = DatabaseConnection()
    message = _message()
    middleware.before_process_message(None, message)

    middleware.after_process_message(None, message, exception=RuntimeError("failed"))

    # A pooled connection goes back to the pool; SQLite keeps its file open.
    assert db.is_closed() is is_postgres(db)


def test_idle_connection_is_checked_before_reuse(db: peewee.Database) -> None:
    # Given a PostgreSQL connection that the server dropped while it was idle
    if not is_postgres(db):
        pytest.skip("SQLite has no server connection to drop.")

    middleware = DatabaseConnection(check_after_idle_ms=0)
    message = _message()
    middleware.before_process_message(None, message)
    dropped = _backend_pid(db)
    middleware.after_process_message(None, message)
    _terminate(db, dropped)

    # When the next message starts
    middleware.before_process_message(None, message)

    # Then it gets a working connection to another server process
    assert _backend_pid(db) != dropped


def test_negative_idle_check_is_rejected() -> None:
    expected = r"check_after_idle_ms must be 0 or more \(got -5\)"
    with pytest.raises(ValueError, match=expected):
        DatabaseConnection(check_after_idle_ms=-5)
