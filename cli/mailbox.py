"""``wallie-cli mailbox``: list connected mailboxes and connect one with a token."""

from __future__ import annotations

from pathlib import Path

import click

from wallie.mail.mailboxes import (
    PROVIDERS,
    connect_mailbox,
    list_mailboxes,
    read_token_file,
    token_file_address,
)
from wallie.mail.tokens import load_token_cipher
from wallie.storage import get_or_create_user

from .common import CliContext, echo_json, json_option, pass_context


@click.group("mailbox", short_help="List and connect Gmail and Outlook mailboxes.")
def mailbox_group() -> None:
    """List connected mailboxes and connect one with a token obtained elsewhere."""


@mailbox_group.command("list", short_help="List connected mailboxes.")
@click.option(
    "--user", "user_email", help="Only mailboxes of the user with this email."
)
@json_option
@pass_context
def list_command(obj: CliContext, user_email: str | None, as_json: bool) -> None:
    """List mailboxes with their provider, state, last sync and last error."""
    obj.ensure_schema()
    mailboxes = list_mailboxes(user_email)
    if as_json:
        echo_json({"mailboxes": [mailbox.as_dict() for mailbox in mailboxes]})
        return

    if not mailboxes:
        owner = f" for {user_email}" if user_email else ""
        click.echo(f"No mailboxes are connected{owner}.")
        return

    for mailbox in mailboxes:
        moment = mailbox.last_sync_at
        synced = moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "never"
        click.echo(
            f"{mailbox.id}  {mailbox.user_email}  {mailbox.provider:<7}  "
            f"{mailbox.address}  {mailbox.state}  last sync {synced}"
        )
        if mailbox.last_error:
            click.echo(f"  last error: {mailbox.last_error}")


@mailbox_group.command("connect", short_help="Store a token for a mailbox.")
@click.option("--user", "user_email", required=True, help="Email of the mailbox owner.")
@click.option(
    "--provider",
    type=click.Choice(PROVIDERS),
    required=True,
    help="Mail provider of the token.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSON file with access_token, refresh_token, client_id, client_secret, "
    "token_uri and expires_at or expiry.",
)
@click.option(
    "--address",
    help="Mailbox address. Defaults to the address in the token file, else --user.",
)
@json_option
@pass_context
def connect_command(
    obj: CliContext,
    user_email: str,
    provider: str,
    token_file: Path,
    address: str | None,
    as_json: bool,
) -> None:
    """Store the token of a mailbox, encrypted with WALLIE_TOKEN_KEYS.

    The token comes from an OAuth consent made elsewhere. Connecting a mailbox
    again replaces its token and resumes a mailbox that needs a reconnect. A
    user that does not exist yet is created.
    """
    cipher = load_token_cipher(settings=obj.settings)
    token = read_token_file(token_file, provider)
    obj.ensure_schema()
    user, created = get_or_create_user(user_email)
    if created and not as_json:
        click.echo(f"Created user {user.email}.")

    mailbox_address = address or token_file_address(token_file) or user.email
    mailbox, inserted = connect_mailbox(user, provider, mailbox_address, token, cipher)
    if as_json:
        echo_json(
            {
                "mailbox_id": mailbox.id,
                "user": user.email,
                "user_created": created,
                "provider": provider,
                "address": mailbox.address,
                "created": inserted,
            }
        )
        return

    verb = "Connected" if inserted else "Reconnected"
    click.echo(
        f"{verb} {provider} mailbox {mailbox.address} (id {mailbox.id}) for "
        f"{user.email}. It syncs with the next {provider}_sync run."
    )
