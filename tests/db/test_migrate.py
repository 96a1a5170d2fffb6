from __future__ import annotations

import multiprocessing

import peewee
import pytest

from wallie.db import make_database
from wallie.db.migrate import applied_versions, load_migrations, migrate
from wallie.db.models import MODELS


def test_migrate_applies_everything_once(database_url: str) -> None:
    database = make_database(database_url)

    first = migrate(database)
    second = migrate(database)

    assert [m.version for m in first] == [m.version for m in load_migrations(_dialect(database))]
    assert second == []
    database.close()


def test_migrated_schema_matches_the_models(db: peewee.Database) -> None:
    for model in MODELS:
        table = model._meta.table_name
        columns = {column.name for column in db.get_columns(table)}
        fields = {field.column_name for field in model._meta.sorted_fields}

        assert columns == fields, f"table {table} differs from model {model.__name__}"


def test_migrated_schema_has_the_model_indexes(db: peewee.Database) -> None:
    for model in MODELS:
        table = model._meta.table_name
        stored = {tuple(index.columns): index.unique for index in db.get_indexes(table)}
        for fields, unique in model._meta.indexes:
            columns = tuple(model._meta.fields[name].column_name for name in fields)

            assert stored.get(columns) == unique, f"index {columns} of {table}"


def test_migrated_schema_has_the_model_foreign_keys(db: peewee.Database) -> None:
    for model in MODELS:
        table = model._meta.table_name
        stored = {(key.column, key.dest_table) for key in db.get_foreign_keys(table)}
        declared = {
            (field.column_name, field.rel_model._meta.table_name)
            for field in model._meta.refs
        }

        assert stored == declared, f"foreign keys of {table}"


def _migrate_in_child(url: str, queue: multiprocessing.Queue) -> None:
    database = make_database(url)
    queue.put(len(migrate(database)))
    database.close()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_processes_migrating_at_once_apply_each_migration_once(database_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    children = [context.Process(target=_migrate_in_child, args=(database_url, queue)) for _ in range(2)]
    for child in children:
        child.start()

    for child in children:
        child.join(60)

    counts = sorted(queue.get(timeout=5) for _ in children)
    database = make_database(database_url)

    assert all(child.exitcode == 0 for child in children)
    assert counts == [0, len(load_migrations("postgres"))]
    assert applied_versions(database) == {m.version for m in load_migrations("postgres")}
    database.close()


def _dialect(database: peewee.Database) -> str:
    return "postgres" if isinstance(database, peewee.PostgresqlDatabase) else "sqlite"
