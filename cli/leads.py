"""``wallie-cli reminders list``, ``leads list`` and ``analyze``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import click

from wallie.analysis.jobs import ENGINES
from wallie.analysis.service import (
    find_conversation,
    latest_scores,
    open_reminders,
    pending_conversation_ids,
)
from wallie.db.models import Contact, LeadScore, Reminder, User
from wallie.errors import NotFound

from .common import CliContext, echo_json, json_option, pass_context
from .jobs import report_embedded

_user_option = click.option(
    "--user", "email", required=True, help="Email address of the user."
)


def _find_user(email: str) -> User:
    user = User.get_or_none(User.email == email.strip().lower())
    if user is None:
        raise NotFound("user", email, "Check the address with the web app's user list.")

    return user


def _zone(user: User) -> ZoneInfo:
    return ZoneInfo(user.time_zone or "UTC")


def _contact_name(contact: Contact | None) -> str | None:
    if contact is None:
        return None

    return contact.name or contact.email or contact.phone or f"contact {contact.id}"


def reminder_as_dict(reminder: Reminder, zone: ZoneInfo) -> dict[str, Any]:
    """Return a reminder as the stable mapping of ``reminders list --json``."""
    return {
        "id": reminder.id,
        "due_at": reminder.due_at.astimezone(zone).isoformat(),
        "text": reminder.text,
        "status": reminder.status,
        "contact": _contact_name(reminder.contact),
        "source_message_id": reminder.source_message_id,
    }


def lead_as_dict(row: LeadScore, zone: ZoneInfo) -> dict[str, Any]:
    """Return a contact's current score as the mapping of ``leads list --json``."""
    return {
        "contact_id": row.contact_id,
        "contact": _contact_name(row.contact),
        "score": row.score,
        "reasons": list(row.reasons or []),
        "computed_at": row.computed_at.astimezone(zone).isoformat(),
    }


@click.group("reminders", short_help="Reminders found in conversations.")
def reminders_group() -> None:
    """Reminders that conversation analysis found: promises and requests with a time."""


@reminders_group.command("list", short_help="List a user's open reminders.")
@_user_option
@json_option
@pass_context
def reminders_list_command(obj: CliContext, email: str, as_json: bool) -> None:
    """List the user's open and snoozed reminders, soonest first, in their time zone."""
    obj.ensure_schema()
    user = _find_user(email)
    zone = _zone(user)
    reminders = [reminder_as_dict(row, zone) for row in open_reminders(user.id)]
    if as_json:
        echo_json({"user": user.email, "reminders": reminders})
        return

    if not reminders:
        click.echo(f"{user.email} has no open reminders.")
        return

    now = datetime.now(UTC)
    for reminder in reminders:
        due = datetime.fromisoformat(reminder["due_at"]).strftime("%Y-%m-%d %H:%M %z")
        who = f"  [{reminder['contact']}]" if reminder["contact"] else ""
        state = "" if reminder["status"] == "open" else f"  ({reminder['status']})"
        if reminder["status"] == "open" and datetime.fromisoformat(reminder["due_at"]) < now:
            state = "  (overdue)"
        click.echo(f"{due}  {reminder['text']}{who}{state}")


@click.group("leads", short_help="Lead scores of contacts.")
def leads_group() -> None:
    """Lead scores of contacts, from 0 to 100, with the reasons behind them."""


@leads_group.command("list", short_help="List a user's contacts by current lead score.")
@_user_option
@json_option
@pass_context
def leads_list_command(obj: CliContext, email: str, as_json: bool) -> None:
    """List the user's scored contacts, highest current score first, with reasons."""
    obj.ensure_schema()
    user = _find_user(email)
    zone = _zone(user)
    leads = [lead_as_dict(row, zone) for row in latest_scores(user.id)]
    if as_json:
        echo_json({"user": user.email, "leads": leads})
        return

    if not leads:
        click.echo(f"No contact of {user.email} has a lead score yet.")
        return

    for lead in leads:
        click.echo(f"{lead['score']:>3}  {lead['contact']}")
        for reason in lead["reasons"]:
            points = reason.get("points", 0)
            # A stated intent to buy carries no points: it makes the lead hot by itself.
            marker = f"{points:+d}" if points else "hot"
            click.echo(f"     {marker:>4}  {reason.get('text', '')}")


@click.command(short_help="Analyse a user's new messages now.")
@_user_option
@click.option(
    "--conversation",
    "conversation_id",
    type=int,
    help="Only this conversation (its id). Default: every conversation with new messages.",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="auto",
    show_default=True,
    help="Analyzer: auto uses OpenAI when OPENAI_API_KEY is set, else offline rules.",
)
@json_option
@pass_context
def analyze_command(
    obj: CliContext, email: str, conversation_id: int | None, engine: str, as_json: bool
) -> None:
    """Send conversation analysis for the user's conversations with new messages.

    Without REDIS_URL the jobs (analysis, scoring, hot-lead notices) run in
    this process before the command exits; with it, the workers run them.
    """
    broker = obj.broker
    user = _find_user(email)
    if conversation_id is not None:
        ids = [find_conversation(user.id, conversation_id).id]
    else:
        ids = pending_conversation_ids(user.id)

    if not ids:
        if as_json:
            echo_json({"embedded": obj.embedded, "conversations": [], "runs": []})
        else:
            click.echo(f"No conversation of {user.email} has messages waiting for analysis.")
        return

    started_at = datetime.now(UTC)
    actor = broker.get_actor("conversation_analysis")
    messages = [
        actor.send(user_id=user.id, conversation_id=conversation, engine=engine)
        for conversation in ids
    ]
    if obj.embedded:
        report_embedded(obj, started_at, as_json)
        return

    if as_json:
        echo_json(
            {
                "embedded": False,
                "conversations": ids,
                "message_ids": [message.message_id for message in messages],
            }
        )
        return

    click.echo(f"Sent analysis of {len(ids)} conversations of {user.email} to the workers.")
