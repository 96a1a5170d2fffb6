"""Versioned, forward-only schema migrations.

Migrations live in :mod:`wallie.db.migrations` as SQL files, one per
database dialect, named ``NNNN_description.sqlite.sql`` and
``NNNN_description.postgres.sql``.  Statements are separated by a line that
holds only ``;``-terminated SQL followed by a blank line.  Once a migration
has shipped it is never edited: a change to the schema is a new file.

:func:`migrate` applies the pending ones in order, each in its own
transaction together with its row in ``schema_migration``.  On PostgreSQL
it holds an advisory lock for the whole run, so two release dynos started
at once apply each migration exactly once; on SQLite an immediate
transaction gives the same guarantee.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import peewee

from ..errors import MigrationError
from ..logging import get_logger
from .fields import utcnow
from .models import BaseModel

logger = get_logger(__name__)

#: Key of the PostgreSQL advisory lock held while migrating; any constant
#: that no other code uses ("wallie" in ASCII).
ADVISORY_LOCK_KEY = 0x77616C6C6965

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>\w+)\.(?P<dialect>sqlite|postgres)\.sql$")

_CREATE_TABLE = (
    'CREATE TABLE IF NOT EXISTS "schema_migration" ('
    '"version" INTEGER NOT NULL PRIMARY KEY, '
    '"name" VARCHAR(200) NOT NULL, '
    '"applied_at" TIMESTAMP NOT NULL)'
)


@dataclass(frozen=True)
class Migration:
    """One migration file for one dialect."""

    version: int
    name: str
    statements: tuple[str, ...]


def dialect_of(database: peewee.Database) -> str:
    """Return ``"postgres"`` or ``"sqlite"`` for ``database``.

    Raises:
      MigrationError: The database is neither.
    """
    if isinstance(database, peewee.PostgresqlDatabase):
        return "postgres"

    if isinstance(database, peewee.SqliteDatabase):
        return "sqlite"

    raise MigrationError(f"No migrations exist for {type(database).__name__}.")


def split_statements(sql: str) -> tuple[str, ...]:
    """Split a migration file into statements at ``;`` that ends a line."""
    parts = re.split(r";\s*\n", sql + "\n")
    return tuple(part.strip() for part in parts if part.strip())


def load_migrations(dialect: str) -> list[Migration]:
    """Return the migrations shipped for ``dialect``, oldest first."""
    migrations = []
    for entry in resources.files("wallie.db.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None or match["dialect"] != dialect:
            continue

        migrations.append(
            Migration(
                version=int(match["version"]),
                name=match["name"],
                statements=split_statements(entry.read_text(encoding="utf-8")),
            )
        )

    migrations.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"Two {dialect} migrations share a version: {versions}.")

    return migrations


def applied_versions(database: peewee.Database) -> set[int]:
    """Return the versions recorded in ``schema_migration``; empty if none."""
    if not database.table_exists("schema_migration"):
        return set()

    cursor = database.execute_sql('SELECT "version" FROM "schema_migration"')
    return {row[0] for row in cursor.fetchall()}


def pending_migrations(database: peewee.Database) -> list[Migration]:
    """Return the migrations not yet applied to ``database``, oldest first."""
    done = applied_versions(database)
    return [m for m in load_migrations(dialect_of(database)) if m.version not in done]


def migrate(database: peewee.Database) -> list[Migration]:
    """Apply every pending migration and return the ones applied.

    Raises:
      MigrationError: A statement failed; its migration is rolled back and
        the ones before it stay applied.
    """
    dialect = dialect_of(database)
    database.connect(reuse_if_open=True)
    if dialect == "postgres":
        database.execute_sql("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))

    try:
        database.execute_sql(_CREATE_TABLE)
        applied = [m for m in pending_migrations(database) if _apply(database, m)]
    finally:
        if dialect == "postgres":
            database.execute_sql("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))

    _warn_if_newer(database, dialect)
    return applied


def _apply(database: peewee.Database, migration: Migration) -> bool:
    lock = "IMMEDIATE" if isinstance(database, peewee.SqliteDatabase) else None
    atomic = database.atomic(lock) if lock else database.atomic()
    with atomic:
        if migration.version in applied_versions(database):
            return False

        for statement in migration.statements:
            try:
                database.execute_sql(statement)
            except peewee.DatabaseError as error:
                raise MigrationError(
                    f"Migration {migration.version:04d}_{migration.name} failed "
                    f"on {statement[:80]!r}: {error}"
                ) from error

        database.execute_sql(
            'INSERT INTO "schema_migration" ("version", "name", "applied_at") '
            "VALUES (%s, %s, %s)".replace("%s", database.param),
            (migration.version, migration.name, utcnow().replace(tzinfo=None)),
        )

    logger.info("Applied migration %04d_%s.", migration.version, migration.name)
    return True


def _warn_if_newer(database: peewee.Database, dialect: str) -> None:
    known = {m.version for m in load_migrations(dialect)}
    unknown = sorted(applied_versions(database) - known)
    if unknown:
        logger.warning(
            "The database has migrations %s that this code does not know; "
            "it is newer than the code that is running.",
            unknown,
        )


def render_schema(models: tuple[type[BaseModel], ...], dialect: str) -> str:
    """Return the ``CREATE`` statements for ``models`` in ``dialect``.

    Used to write a new migration file from the models; never at run time.
    """
    if dialect == "postgres":
        database: peewee.Database = peewee.PostgresqlDatabase(None)
    else:
        database = peewee.SqliteDatabase(None)

    statements = []
    with database.bind_ctx(models):
        for model in models:
            queries = [model._schema._create_table(safe=False)]
            queries += model._schema._create_indexes(safe=False)
            for query in queries:
                sql, params = database.get_sql_context().sql(query).query()
                if params:
                    raise MigrationError(f"Schema SQL has parameters: {sql!r}")

                if dialect == "sqlite":
                    sql = _never_reuse_ids(sql)
                statements.append(sql)

    return ";\n\n".join(statements) + ";\n"


def _never_reuse_ids(sql: str) -> str:
    """Add ``AUTOINCREMENT`` to a SQLite integer primary key.

    Without it SQLite gives a new row the largest id plus one.  After the
    newest user is deleted, the next user would get the same id, and records
    kept by id (deletion requests, the audit log, run history) would seem to
    belong to them.  PostgreSQL sequences do not hand out an id twice.
    """
    return sql.replace(
        '"id" INTEGER NOT NULL PRIMARY KEY,', '"id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,', 1
    )


def render_initial(folder: Path | None = None) -> list[Path]:
    """Rewrite ``0001_initial`` for both dialects from the current models.

    Note:
      Only valid while ``0001`` has not been released to any database that
      must be kept; after that, every schema change is a new numbered file.
    """
    from .models import MODELS

    if folder is None:
        folder = Path(__file__).resolve().parent / "migrations"

    header = (
        "-- Initial schema: users, contacts, conversations, messages, reminders,\n"
        "-- scores, outbox, run history, usage, sync state and the audit log.\n"
    )
    written = []
    for dialect in ("sqlite", "postgres"):
        path = folder / f"0001_initial.{dialect}.sql"
        path.write_text(header + render_schema(MODELS, dialect), encoding="utf-8")
        written.append(path)

    return written


if __name__ == "__main__":
    for written_path in render_initial():
        print(f"Wrote {written_path}.")
