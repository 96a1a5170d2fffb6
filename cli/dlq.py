"""``wallie-cli dlq``: the Redis dead-letter queues."""

from __future__ import annotations

import sys

import click
from dramatiq.brokers.redis import RedisBroker

from wallie.queues import dead_letters, find_dead_letter, requeue

from .common import RET_USAGE, CliContext, echo_json, json_option, pass_context


def _redis_broker(obj: CliContext) -> RedisBroker:
    broker = obj.broker
    if not isinstance(broker, RedisBroker):
        click.echo(
            "Error: dead-letter queues exist only on Redis; set REDIS_URL. "
            "Without it, find failed jobs with: wallie-cli runs list --status failed",
            err=True,
        )
        sys.exit(RET_USAGE)

    return broker


@click.group("dlq", short_help="List and requeue dead letters.")
def dlq_group() -> None:
    """List and requeue messages that used up their retries."""


@dlq_group.command("list", short_help="List dead letters.")
@click.option("--queue", help="Only this queue.")
@json_option
@pass_context
def dlq_list_command(obj: CliContext, queue: str | None, as_json: bool) -> None:
    """List dead letters, oldest first, with the last line of their error."""
    letters = dead_letters(_redis_broker(obj), queue)
    if as_json:
        echo_json(
            {
                "dead_letters": [
                    {
                        "message_id": letter.message_id,
                        "queue": letter.queue,
                        "actor": letter.actor,
                        "died_at": letter.died_at.isoformat(),
                        "error": letter.error,
                    }
                    for letter in letters
                ]
            }
        )
        return

    if not letters:
        click.echo("No dead letters.")
        return

    for letter in letters:
        when = letter.died_at.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{when}  {letter.message_id}  {letter.queue}  {letter.actor}: {letter.error}")


@dlq_group.command("requeue", short_help="Send dead letters back to their queue.")
@click.argument("message_id", required=False)
@click.option("--all", "requeue_all", is_flag=True, help="Requeue every dead letter (of --queue, if given).")
@click.option("--queue", help="With --all, only this queue.")
@json_option
@pass_context
def dlq_requeue_command(
    obj: CliContext, message_id: str | None, requeue_all: bool, queue: str | None, as_json: bool
) -> None:
    """Send dead letter MESSAGE_ID, or every dead letter with --all, back to its queue."""
    if (message_id is None) == (not requeue_all):
        raise click.UsageError("Give either a MESSAGE_ID or --all.")

    broker = _redis_broker(obj)
    letters = dead_letters(broker, queue) if requeue_all else [find_dead_letter(broker, message_id or "")]
    moved = requeue(broker, letters)
    if as_json:
        echo_json({"requeued": moved})
        return

    if not moved:
        click.echo("No dead letters to requeue.")

    for moved_id in moved:
        click.echo(f"Requeued {moved_id}.")
