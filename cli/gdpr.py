"""``wallie-cli gdpr-delete`` and ``export``: erase or export a person's data."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from wallie.broker import run_embedded
from wallie.db.models import Contact, Import, User
from wallie.errors import NotFound
from wallie.gdpr import dry_run_counts, request_deletion
from wallie.gdpr.deletion import receipt_of
from wallie.gdpr.export import export_user
from wallie.storage import find_contact

from .common import RET_FAILURE, CliContext, echo_json, json_option, pass_context

#: The actor that runs deletion requests (``actors.gdpr``).
DELETE_ACTOR = "knowledge_delete"


def find_user(email: str) -> User:
    """Return the user with ``email``.

    Raises:
      NotFound: No user has this address.
    """
    user = User.get_or_none(User.email == email.strip().lower()) or User.get_or_none(User.email == email)
    if user is None:
        raise NotFound("user", email, "Check the address with the user.")

    return user


def resolve_contact(user: User, value: str) -> Contact:
    """Return the user's contact named by an email, a phone number (+E.164) or an id.

    Raises:
      click.BadParameter: The value is none of these forms.
      NotFound: No contact of the user matches.
    """
    text = value.strip()
    contact: Contact | None
    if "@" in text:
        contact = find_contact(user, email=text)
    elif text.startswith("+"):
        contact = find_contact(user, phone=text.replace(" ", ""))
    elif text.isdigit():
        contact = Contact.get_or_none((Contact.id == int(text)) & (Contact.user == user))
    else:
        raise click.BadParameter(
            f"{value!r} is not a contact reference. Name the contact by one of: its email "
            "address (ana@example.com), its phone number in +E.164 form (+31612345678), "
            "or its numeric contact id (42).",
            param_hint="--contact",
        )

    if contact is None:
        raise NotFound("contact of this user", value)

    return contact


def _target(
    user_email: str | None, contact: str | None, import_id: int | None
) -> tuple[str, int, int]:
    if import_id is not None:
        if contact is not None:
            raise click.UsageError("Give --import alone, or --contact with --user.")

        row = Import.get_or_none(Import.id == import_id)
        if row is None:
            raise NotFound("import", import_id)

        if user_email is not None and row.user_id != find_user(user_email).id:
            raise click.UsageError(f"Import {import_id} does not belong to that user.")

        return "import", row.user_id, row.id

    if user_email is None:
        raise click.UsageError("Give --user EMAIL, --contact VALUE --user EMAIL, or --import ID.")

    user = find_user(user_email)
    if contact is not None:
        return "contact", user.id, resolve_contact(user, contact).id

    return "user", user.id, user.id


def _print_counts(counts: dict[str, Any]) -> None:
    tables = counts["tables"]
    if not tables:
        click.echo("No rows to delete.")

    for table, count in sorted(tables.items()):
        click.echo(f"  {table}: {count}")

    click.echo(f"  media files: {counts['files']['media']}")
    click.echo(f"  outbox mail files: {counts['files']['outbox']}")
    click.echo(f"  upload files: {counts['files']['uploads']}")
    click.echo(f"  Redis keys: {counts['redis_keys']}")
    if counts.get("values_redacted"):
        click.echo(
            f"  names and numbers replaced in conversation titles and import statistics: "
            f"{counts['values_redacted']}"
        )
    if counts["mentions_left"]:
        click.echo(
            f"Kept: {counts['mentions_left']} mails and notifications that name the contact "
            "among others, such as daily summaries."
        )


@click.command(short_help="Erase an account, one contact's data or one import (GDPR).")
@click.option("--user", "user_email", metavar="EMAIL", help="The account; alone, the whole account is erased.")
@click.option("--contact", metavar="EMAIL|PHONE|ID", help="Erase this contact of --user: the contact, its messages, reminders, scores.")
@click.option("--import", "import_id", type=int, metavar="ID", help="Erase this import and the messages and documents it created.")
@click.option("--dry-run", is_flag=True, help="Print the counts per table that would be deleted and delete nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--reference", default="", help="The request's id, such as a ticket number; stored in the receipt.")
@click.option("--requested-by", default=None, help="Who asked, as an operator login; default: the OS user.")
@click.option("--notify", "notify_to", default="", metavar="EMAIL", help="Mail the receipt to this address (for a whole account, the only receipt mail).")
@json_option
@pass_context
def gdpr_delete_command(
    obj: CliContext,
    user_email: str | None,
    contact: str | None,
    import_id: int | None,
    dry_run: bool,
    yes: bool,
    reference: str,
    requested_by: str | None,
    notify_to: str,
    as_json: bool,
) -> None:
    """Erase personal data for a GDPR request, in batches that resume after a crash.

    Without REDIS_URL the deletion runs here and the receipt is printed.
    With Redis it is queued for the workers, and the command prints how to
    follow it.  The receipt (ids and counts only) is kept in the audit log.
    """
    obj.ensure_schema()
    scope, user_id, target_id = _target(user_email, contact, import_id)
    described = f"{scope} {target_id} of user {user_id}" if scope != "user" else f"the whole account of user {user_id}"
    counts = dry_run_counts(scope, user_id, target_id, obj.settings)
    if dry_run:
        if as_json:
            echo_json({"dry_run": True, "scope": scope, "user_id": user_id, "target_id": target_id, **counts})
            return

        click.echo(f"Would delete {described}:")
        _print_counts(counts)
        return

    if not yes:
        click.echo(f"This deletes {described}:", err=True)
        total = sum(counts["tables"].values())
        click.confirm(f"Delete {total} rows and their files for good?", abort=True, err=True)

    request = request_deletion(
        scope,
        user_id,
        target_id,
        reference=reference,
        requested_by=requested_by if requested_by is not None else getpass.getuser(),
        notify_to=notify_to,
    )
    started_at = datetime.now(UTC)
    message = obj.broker.get_actor(DELETE_ACTOR).send(request.id)
    if not obj.embedded:
        _report_queued(request.id, message.message_id, as_json)
        return

    run_embedded(obj.broker)
    request = type(request).get_by_id(request.id)
    if request.status != "done":
        click.echo(f"Error: deletion request {request.id} stopped ({request.status}, {request.error}). "
                   f"See: wallie-cli runs show {message.message_id}", err=True)
        sys.exit(RET_FAILURE)

    receipt = receipt_of(request)
    if as_json:
        echo_json({"embedded": True, "message_id": message.message_id, "receipt": receipt})
        return

    click.echo(f"Deleted {described} (request {request.id}, started {started_at:%Y-%m-%d %H:%M:%S} UTC).")
    echo_json(receipt)


def _report_queued(request_id: int, message_id: str, as_json: bool) -> None:
    if as_json:
        echo_json({"embedded": False, "request_id": request_id, "message_id": message_id})
        return

    click.echo(f"Queued deletion request {request_id} as message {message_id}.")
    click.echo(f"Follow it with: wallie-cli runs show {message_id}")


@click.command(short_help="Export a user's data as a zip of JSON files (right of access).")
@click.option("--user", "user_email", required=True, metavar="EMAIL", help="The account to export.")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_context
def export_command(obj: CliContext, user_email: str, path: Path, as_json: bool) -> None:
    """Write every row that mentions the user, one JSON file per table, and their media to PATH."""
    obj.ensure_schema()
    user = find_user(user_email)
    manifest = export_user(user.id, path, obj.settings)
    if as_json:
        echo_json({"path": str(path), **manifest})
        return

    rows = sum(manifest["tables"].values())
    click.echo(f"Wrote {path}: {rows} rows from {len(manifest['tables'])} tables and {manifest['media_files']} media files.")
