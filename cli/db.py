"""``wallie-cli db``: schema migrations."""

from __future__ import annotations

import click

from wallie.db import connect
from wallie.db.migrate import applied_versions, dialect_of, load_migrations, migrate

from .common import CliContext, echo_json, json_option, pass_context


@click.group("db", short_help="Manage the database schema.")
def db_group() -> None:
    """Manage the database schema."""


@db_group.command("migrate", short_help="Apply pending migrations.")
@json_option
@pass_context
def migrate_command(obj: CliContext, as_json: bool) -> None:
    """Apply every pending migration; running it again changes nothing.

    Safe to run from several release processes at once: on PostgreSQL an
    advisory lock lets one apply the migrations while the others wait.
    """
    database = connect(obj.settings)
    applied = migrate(database)
    names = [f"{m.version:04d}_{m.name}" for m in applied]
    if as_json:
        echo_json({"applied": names})
        return

    if not names:
        click.echo("The schema is up to date; nothing to apply.")
        return

    for name in names:
        click.echo(f"Applied {name}.")


@db_group.command("status", short_help="Show applied and pending migrations.")
@json_option
@pass_context
def status_command(obj: CliContext, as_json: bool) -> None:
    """Show which migrations are applied and which are pending."""
    database = connect(obj.settings)
    done = applied_versions(database)
    rows = [
        {"version": m.version, "name": m.name, "applied": m.version in done}
        for m in load_migrations(dialect_of(database))
    ]
    if as_json:
        echo_json({"migrations": rows})
        return

    for row in rows:
        state = "applied" if row["applied"] else "pending"
        click.echo(f"{row['version']:04d}_{row['name']}  {state}")
