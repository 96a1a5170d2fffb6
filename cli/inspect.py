"""``wallie-cli inspect``: queues, actors and recent failures."""

from __future__ import annotations

from typing import Any

import click
import dramatiq

from wallie.queues import queue_stats
from wallie.runs import RunFilter, list_runs, run_as_dict

from .common import MOMENT, CliContext, echo_json, json_option, pass_context
from .schedule import schedule_command

#: Actor options shown by ``inspect actors``; the others are internal.
_SHOWN_OPTIONS = ("max_retries", "time_limit", "max_age", "periodic", "debounce", "limits")


@click.group("inspect", short_help="Look at queues, actors and failures.")
def inspect_group() -> None:
    """Look at queues, actors and recent failures."""


inspect_group.add_command(schedule_command, "schedule")


@inspect_group.command("queues", short_help="Ready, delayed and dead counts per queue.")
@json_option
@pass_context
def queues_command(obj: CliContext, as_json: bool) -> None:
    """Show ready, delayed and dead-letter counts of every queue."""
    stats = queue_stats(obj.broker)
    if as_json:
        echo_json({"embedded": obj.embedded, "queues": [vars(s) for s in stats]})
        return

    if obj.embedded:
        click.echo("REDIS_URL is unset: queues live in each process and are empty between commands.")

    if not stats:
        click.echo("No queues are declared.")
        return

    click.echo(f"{'queue':<24} {'ready':>8} {'delayed':>8} {'dead':>8}")
    for stat in stats:
        click.echo(f"{stat.name:<24} {stat.ready:>8} {stat.delayed:>8} {stat.dead:>8}")


def actor_as_dict(actor: dramatiq.Actor[Any, Any]) -> dict[str, Any]:
    """Return the queue and the options an operator cares about for ``actor``."""
    options = {
        name: str(actor.options[name]) if name == "periodic" else actor.options[name]
        for name in _SHOWN_OPTIONS
        if name in actor.options
    }
    return {"actor": actor.actor_name, "queue": actor.queue_name, "options": options}


@inspect_group.command("actors", short_help="Every actor with its queue and options.")
@json_option
@pass_context
def actors_command(obj: CliContext, as_json: bool) -> None:
    """List every declared actor with its queue, retries, time limit, cron,
    debounce and limits."""
    broker = obj.broker
    actors = [actor_as_dict(broker.get_actor(name)) for name in sorted(broker.get_declared_actors())]
    if as_json:
        echo_json({"actors": actors})
        return

    if not actors:
        click.echo("No actors are declared.")
        return

    for actor in actors:
        options = ", ".join(f"{key}={value}" for key, value in actor["options"].items())
        click.echo(f"{actor['actor']:<28} queue={actor['queue']}  {options}".rstrip())


@inspect_group.command("failures", short_help="Recent failed runs.")
@click.option("--since", type=MOMENT, default="24h", show_default=True, help="Only failures after this time, ISO 8601 or an age like 24h.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Show at most this many failures.")
@json_option
@pass_context
def failures_command(obj: CliContext, since: Any, limit: int, as_json: bool) -> None:
    """List the runs that failed for good, newest first, with their errors."""
    obj.ensure_schema()
    runs = list_runs(RunFilter(status="failed", since=since, limit=limit))
    if as_json:
        echo_json({"failures": [run_as_dict(run) for run in runs]})
        return

    if not runs:
        click.echo("No failed runs in that period.")
        return

    for run in runs:
        when = run.finished_at.strftime("%Y-%m-%d %H:%M:%S") if run.finished_at else "-"
        click.echo(f"{when}  {run.message_id}  {run.actor}: {run.error_type}: {run.error}")
