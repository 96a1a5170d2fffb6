"""``wallie-cli import whatsapp``, ``import document`` and ``demo``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import click

from wallie.broker import run_embedded
from wallie.db.models import Reminder, User
from wallie.knowledge.documents import DocumentError, import_document
from wallie.knowledge.uploads import stage_upload
from wallie.logging import get_logger
from wallie.storage import delete_user_if_unused, get_or_create_user
from wallie.whatsapp.errors import WhatsAppError
from wallie.whatsapp.importer import (
    ImportResult,
    MeRequiredError,
    import_whatsapp,
    public_stats,
)

from .common import RET_USAGE, CliContext, echo_json, fail, json_option, pass_context
from .leads import leads_list_command, reminders_list_command

logger = get_logger(__name__)

#: Keys of ``import whatsapp --json``, in the order the text output uses.
SUMMARY_KEYS = (
    "import_id",
    "status",
    "messages",
    "system_messages",
    "media",
    "duplicates_skipped",
    "participants",
    "first_message_at",
    "last_message_at",
    "date_order",
    "date_order_source",
    "unparsed_lines",
    "unparsed_samples",
    "conversation_id",
    "me",
    "locale",
    "same_file_as_import",
    "replaced_import",
)

#: Words of the text output for each source of the date order.
_DATE_ORDER_SOURCES = {
    "explicit": "from --date-order",
    "file": "from the file",
}

#: The user the demo imports the sample chat for, unless --user names another.
DEMO_USER = "demo@example.com"

#: The participant of the sample chat who is the user.
DEMO_ME = "Sam Carter"

_user_option = click.option(
    "--user", "email", required=True, help="Email address of the user; created when missing."
)


def ensure_user(obj: CliContext, email: str) -> User:
    """Return the user with ``email``, creating it with a notice on standard error.

    With Redis, the broker is reached first, so an unreachable Redis stops
    the command before it creates a user or copies an upload.
    """
    user, created = _get_user(obj, email)
    if created:
        _announce(user)
    return user


@contextmanager
def import_user(obj: CliContext, email: str) -> Iterator[User]:
    """Yield the user with ``email`` for an import that runs in this process.

    A user created here is deleted again when the file is rejected: not an
    export, an unknown ``--me``, a date order the file rules out, or an
    unreadable document. So a rejected file stores nothing. The user stays
    when any row refers to it, such as one that another process stored for
    it meanwhile. The notice of a new user follows the import whenever the
    user stays, also when the import was interrupted.
    """
    user, created = _get_user(obj, email)
    deleted = False
    try:
        yield user
    except (WhatsAppError, MeRequiredError, DocumentError, SystemExit):
        if created:
            deleted = delete_user_if_unused(user.id)
        if deleted:
            logger.info("Deleted user %s, created for an import that was rejected.", user.id)
        raise
    finally:
        if created and not deleted:
            _announce(user)


def _get_user(obj: CliContext, email: str) -> tuple[User, bool]:
    obj.ensure_schema()
    if not obj.embedded:
        obj.broker.client.ping()
    return get_or_create_user(email, time_zone=obj.settings.default_time_zone)


def _announce(user: User) -> None:
    click.echo(
        f"Created user {user.email} with time zone {user.time_zone}; "
        "change it in the web app if it is wrong.",
        err=True,
    )


class _Progress:
    """A progress bar on standard error, shown only when it is a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.shown = 0
        self.enabled = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def summary(result: ImportResult) -> dict[str, Any]:
    """Return the mapping of ``import whatsapp --json`` for a finished import."""
    stats = public_stats(result.stats)
    document = {key: stats.get(key) for key in SUMMARY_KEYS}
    document["status"] = result.status
    document["replaced"] = [
        {"import_id": item["import_id"], "date_order": item["date_order"],
         "me": item["me"]}
        for item in stats.get("replaced") or []
    ]
    return document


def count(number: int, noun: str, plural: str | None = None) -> str:
    """Return ``number`` and ``noun``, in the plural unless the number is 1."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def date_order_source(document: dict[str, Any]) -> str:
    """Return where the date order came from, as the words inside the brackets."""
    source = document["date_order_source"]
    if source in _DATE_ORDER_SOURCES:
        return _DATE_ORDER_SOURCES[source]

    locale = document.get("locale")
    where = f"from the locale {locale}" if locale else "the default with no locale set"
    return f"{where}; pass --date-order if it is wrong"


def replaced_line(item: dict[str, Any], document: dict[str, Any]) -> str:
    """Return the sentence on a replaced import, naming how it read the file differently."""
    differences = []
    if item["date_order"] != document["date_order"]:
        differences.append(f"read the dates in {item['date_order']} order")
    if item["me"] and item["me"] != document.get("me"):
        differences.append(f"took {item['me']!r} as you")
    if not differences:
        return f"Replaced import {item['import_id']}."

    return f"Replaced import {item['import_id']}, which {' and '.join(differences)}."


def print_summary(document: dict[str, Any], source: str) -> None:
    """Print an import summary as sentences."""
    for item in document.get("replaced") or []:
        click.echo(replaced_line(item, document))
    click.echo(
        f"Imported {count(document['messages'], 'message')}, "
        f"{count(document['system_messages'], 'system event')} and "
        f"{count(document['media'], 'media file')} from {source} "
        f"(import {document['import_id']}, {document['status']})."
    )
    if document["duplicates_skipped"]:
        click.echo(f"Skipped {count(document['duplicates_skipped'], 'message')} "
                   "already stored.")
    if document.get("same_file_as_import") is not None:
        click.echo(f"The file has the same contents as import "
                   f"{document['same_file_as_import']}.")
    click.echo(f"Participants: {', '.join(document['participants'])}.")
    click.echo(f"From {document['first_message_at']} to {document['last_message_at']}.")
    click.echo(
        f"Dates read in {document['date_order']} order ({date_order_source(document)})."
    )
    if document["unparsed_lines"]:
        click.echo(f"{count(document['unparsed_lines'], 'line')} did not parse; "
                   "the first ones:")
        for sample in document["unparsed_samples"] or []:
            click.echo(f"  line {sample['line_number']}: {sample['excerpt']!r} "
                       f"({sample['reason']})")


def _run_whatsapp(obj: CliContext, user: User, path: Path, me: str | None,
                  date_order: str | None) -> ImportResult:
    """Import in this process, then send and, when embedded, run the follow-ups."""
    progress = _Progress(f"Importing {path.name}")
    try:
        result = import_whatsapp(user, path, obj.settings, me=me, date_order=date_order,
                                 progress=progress)
    except MeRequiredError as error:
        fail(error.describe("--me"), RET_USAGE)
        raise
    finally:
        progress.close()

    # Imported here, not at the top: importing ``actors`` installs the broker,
    # which reads the settings before the command can report a bad value.
    from actors.knowledge import send_follow_ups

    send_follow_ups(obj.broker, user.id, result)
    if obj.embedded:
        run_embedded(obj.broker)
    return result


@click.group("import", short_help="Import WhatsApp exports and documents.")
def import_group() -> None:
    """Import a WhatsApp chat export, a document or a contact list for a user."""


@import_group.command("whatsapp", short_help="Import a WhatsApp chat export.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_user_option
@click.option("--me", help="Your name or number as the chat shows it.")
@click.option("--date-order", type=click.Choice(["dmy", "mdy", "ymd"]),
              help="Force the date order when the file's dates are ambiguous.")
@json_option
@pass_context
def whatsapp_command(obj: CliContext, path: Path, email: str, me: str | None,
                     date_order: str | None, as_json: bool) -> None:
    """Import PATH, a .txt or .zip file from WhatsApp's Export chat, for --user.

    Importing the same chat again adds only the messages not stored yet. A
    copy of a file imported before adds nothing, whatever its name, and
    importing a file again with another --date-order or --me replaces the
    messages of the earlier import.
    Without REDIS_URL the import and the analysis run in this process; with
    it, the file is copied under WALLIE_HOME/uploads/users/ID and a worker imports it.
    """
    if not obj.embedded:
        _enqueue(obj, ensure_user(obj, email), path, as_json, me=me, date_order=date_order)
        return

    with import_user(obj, email) as user:
        document = summary(_run_whatsapp(obj, user, path, me, date_order))
    if as_json:
        echo_json(document)
    else:
        print_summary(document, path.name)


def _enqueue(obj: CliContext, user: User, path: Path, as_json: bool, **options: Any) -> None:
    key = stage_upload(obj.settings, path, user.id)
    actor = obj.broker.get_actor("knowledge_import")
    message = actor.send(user_id=user.id, path=key, **options)
    if as_json:
        echo_json({"embedded": False, "message_id": message.message_id, "path": key})
        return

    click.echo(f"Enqueued the import of {path.name} as message {message.message_id}.")
    click.echo(f"Follow it with: wallie-cli runs show {message.message_id}")


@import_group.command("document", short_help="Import a document or a contact list.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_user_option
@json_option
@pass_context
def document_command(obj: CliContext, path: Path, email: str, as_json: bool) -> None:
    """Import PATH for --user: text, Markdown, PDF, DOCX or CSV become knowledge,
    CSV contact lists and vCard (.vcf) files become contacts."""
    if not obj.embedded:
        _enqueue(obj, ensure_user(obj, email), path, as_json)
        return

    with import_user(obj, email) as user:
        result = import_document(user, path)
    if as_json:
        echo_json(result.as_dict())
    elif result.kind == "contacts":
        click.echo(f"Imported {result.contacts_created} new contacts and matched "
                   f"{result.contacts_matched} existing ones from {path.name} "
                   f"(import {result.import_id}).")
        if result.skipped_rows or result.invalid_values:
            click.echo(f"Skipped {result.skipped_rows} rows without a name, phone or email, "
                       f"and dropped {result.invalid_values} invalid emails or phone numbers.")
    else:
        click.echo(f"Imported {result.characters} characters of text from {path.name} "
                   f"(import {result.import_id}).")


@click.command(short_help="Import a sample sales chat and show leads and reminders.")
@click.option("--user", "email", default=DEMO_USER, show_default=True,
              help="Email address of the demo user; created when missing.")
@pass_context
@click.pass_context
def demo_command(ctx: click.Context, obj: CliContext, email: str) -> None:
    """Import a sample WhatsApp sales chat, analyse it in this process, then
    print the import, the leads with their reasons, the reminders and any
    hot-lead mail written to the outbox folder."""
    user = ensure_user(obj, email)
    started_at = datetime.now(UTC)
    sample = resources.files("wallie") / "samples" / "whatsapp_sample.txt"
    with resources.as_file(sample) as path:
        result = _run_whatsapp(obj, user, Path(path), DEMO_ME, None)

    print_summary(summary(result), "the sample chat")
    if not obj.embedded:
        click.echo("Analysis was sent to the workers; run this again once they finish.")
    click.echo("")
    click.echo("Leads:")
    ctx.invoke(leads_list_command, email=user.email, as_json=False)
    click.echo("")
    click.echo("Reminders:")
    ctx.invoke(reminders_list_command, email=user.email, as_json=False)
    kept = (
        Reminder.select()
        .where((Reminder.user == user.id) & (Reminder.status == "done"))
        .order_by(Reminder.due_at, Reminder.id)
    )
    for reminder in kept:
        click.echo(f"Done, a later message shows it was kept: {reminder.text}")
    mails = sorted(
        mail for mail in obj.settings.outbox_dir.glob("*.eml")
        if datetime.fromtimestamp(mail.stat().st_mtime, UTC) >= started_at.replace(
            microsecond=0)
    ) if obj.settings.outbox_dir.is_dir() else []
    click.echo("")
    if mails:
        for mail in mails:
            click.echo(f"Hot-lead mail written to {mail}")
    else:
        click.echo("No hot-lead mail was written to the outbox folder.")
