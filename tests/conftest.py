"""Fixtures shared by every test: servers, databases, brokers, the CLI runner.

Storage and middleware tests take the ``database_url`` fixture, which runs
each of them once on SQLite and once on PostgreSQL.  A test that needs a
server that cannot be found or started fails when ``CI`` is set and skips
with the reason otherwise.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import peewee
import psycopg2
import pytest
import redis
from click.testing import CliRunner

from wallie.broker import reset_broker, setup_broker
from wallie.db import connect
from wallie.db.migrate import migrate
from wallie.db.models import database_proxy
from wallie.settings import Settings, load_settings, reset_settings

from .servers import (
    PostgresServer,
    RedisServer,
    ServerUnavailable,
    external_postgres,
    start_postgres,
    start_redis,
)

#: Folder of real inputs next to the repository (WhatsApp exports, API bodies).
CORPUS = Path(os.environ.get("WALLIE_CORPUS") or Path(__file__).resolve().parents[1].parent / "shared" / "corpus")


def unavailable(reason: str) -> None:
    """Fail under CI, where every server must be present; skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")

    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real Redis server for the whole session."""
    url = os.environ.get("WALLIE_TEST_REDIS_URL")
    if url:
        yield RedisServer(url, None, None)
        return

    try:
        server = start_redis()
    except ServerUnavailable as error:
        unavailable(f"Redis is unavailable: {error}")

    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session."""
    url = os.environ.get("WALLIE_TEST_POSTGRES_URL")
    if url:
        yield external_postgres(url)
        return

    try:
        server = start_postgres()
    except ServerUnavailable as error:
        unavailable(f"PostgreSQL is unavailable: {error}")

    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The URL of an empty Redis database."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield redis_server.url
    client.flushdb()
    client.close()


def _create_postgres_database(server: PostgresServer) -> tuple[str, str]:
    name = f"wallie_test_{uuid.uuid4().hex[:12]}"
    connection = psycopg2.connect(server.url("postgres"))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')

    connection.close()
    return name, server.url(name)


def _drop_postgres_database(server: PostgresServer, name: str) -> None:
    connection = psycopg2.connect(server.url("postgres"))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    connection.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, once SQLite and once PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/wallie.db"
        return

    server = request.getfixturevalue("postgres_server")
    name, url = _create_postgres_database(server)
    yield url
    _close_models_database()
    _drop_postgres_database(server, name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database, for tests that are about the embedded default."""
    return f"sqlite:///{tmp_path}/wallie.db"


def _close_models_database() -> None:
    database = database_proxy.obj
    if database is not None:
        if isinstance(database, peewee.PostgresqlDatabase) and hasattr(database, "close_all"):
            database.close_all()
        else:
            database.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings of the embedded default on the test's database."""
    return load_settings({"WALLIE_HOME": str(tmp_path), "DATABASE_URL": database_url})


@pytest.fixture
def db(settings: Settings) -> Iterator[peewee.Database]:
    """The test's database, migrated and bound to every model."""
    database = connect(settings)
    migrate(database)
    yield database
    _close_models_database()


@pytest.fixture
def stub_broker(settings: Settings, db: peewee.Database) -> Iterator[dramatiq.Broker]:
    """The in-process broker with Wallie's middleware, on the test's database."""
    reset_broker()
    broker = setup_broker(settings)
    yield broker
    broker.flush_all()
    reset_broker()


@pytest.fixture
def redis_settings(settings: Settings, redis_url: str) -> Settings:
    """Settings for Redis on the test's database."""
    return settings.replace(redis_url=redis_url)


@pytest.fixture
def redis_broker(redis_settings: Settings, db: peewee.Database) -> Iterator[dramatiq.Broker]:
    """The Redis broker with Wallie's middleware, on the test's database."""
    reset_broker()
    broker = setup_broker(redis_settings)
    yield broker
    reset_broker()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, db: peewee.Database) -> Iterator[Settings]:
    """Environment for ``wallie-cli`` on the test's database, embedded broker."""
    monkeypatch.setenv("WALLIE_HOME", str(settings.home))
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.delenv("REDIS_URL", raising=False)
    reset_settings()
    reset_broker()
    yield settings
    reset_broker()
    reset_settings()


@pytest.fixture
def runner() -> CliRunner:
    """Click's test runner with standard error kept apart."""
    return CliRunner()
