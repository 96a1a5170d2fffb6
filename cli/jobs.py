"""``wallie-cli enqueue``, ``replay`` and ``runs``: send jobs and follow them."""

from __future__ import annotations

import inspect
import json
import re
import sys
import typing
from datetime import UTC, datetime
from typing import Any

import click
import dramatiq

from wallie.broker import run_embedded
from wallie.db.models import JobRun
from wallie.runs import (
    STATUSES,
    ReplayRejected,
    RunFilter,
    get_runs,
    list_runs,
    replay,
    run_as_dict,
    runs_to_replay,
)

from .common import (
    DURATION,
    MOMENT,
    RET_FAILURE,
    CliContext,
    echo_json,
    json_option,
    pass_context,
)

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def actor_name(name: str) -> str:
    """Return the declared actor name for ``name``, accepting ``camelCase`` too.

    Examples:
      >>> actor_name("dailySummary")
      'daily_summary'
    """
    return _CAMEL_BOUNDARY.sub("_", name).lower().replace("-", "_")


def find_actor(broker: dramatiq.Broker, name: str) -> dramatiq.Actor[Any, Any]:
    """Return the actor called ``name``, or raise a usage error listing the valid ones."""
    try:
        return broker.get_actor(actor_name(name))
    except dramatiq.ActorNotFound:
        valid = ", ".join(sorted(broker.get_declared_actors())) or "none declared"
        raise click.UsageError(f"Unknown actor {name!r}. Valid actors: {valid}.") from None


def parse_pairs(pairs: tuple[str, ...], json_args: str | None) -> dict[str, Any]:
    """Turn ``KEY=VALUE`` pairs and a JSON object into keyword arguments.

    A value that is valid JSON (a number, ``true``, a list ...) is decoded;
    anything else is kept as a string.
    """
    arguments: dict[str, Any] = {}
    if json_args:
        try:
            decoded = json.loads(json_args)
        except json.JSONDecodeError as error:
            raise click.BadParameter(f"invalid JSON: {error}", param_hint="--json-args") from None

        if not isinstance(decoded, dict):
            raise click.BadParameter("must be a JSON object such as {\"user_id\": 1}.", param_hint="--json-args")

        arguments.update(decoded)

    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE.", param_hint="ARGUMENTS")

        try:
            arguments[key] = json.loads(raw)
        except json.JSONDecodeError:
            arguments[key] = raw

    return arguments


def check_arguments(
    actor: dramatiq.Actor[Any, Any], arguments: dict[str, Any], *, partial: bool = False
) -> dict[str, Any]:
    """Check ``arguments`` against the actor's signature and coerce simple types.

    With ``partial``, required parameters may be missing, because the caller
    fills them in later (a backfill adds each target's ids).

    Raises:
      click.UsageError: An argument is unknown, missing or of the wrong type.
    """
    signature = inspect.signature(actor.fn)
    valid = ", ".join(
        f"{name}" + ("" if p.default is inspect.Parameter.empty else f"={p.default!r}")
        for name, p in signature.parameters.items()
    )
    unknown = sorted(set(arguments) - set(signature.parameters))
    if unknown:
        raise click.UsageError(
            f"Actor {actor.actor_name!r} takes no argument {', '.join(unknown)}. "
            f"Valid arguments: {valid or 'none'}."
        )

    try:
        if partial:
            signature.bind_partial(**arguments)
        else:
            signature.bind(**arguments)
    except TypeError as error:
        raise click.UsageError(
            f"Arguments do not fit actor {actor.actor_name!r}: {error}. Valid arguments: {valid}."
        ) from None

    hints = typing.get_type_hints(actor.fn)
    return {name: _coerce(actor, name, value, hints.get(name)) for name, value in arguments.items()}


def _coerce(actor: dramatiq.Actor[Any, Any], name: str, value: Any, hint: Any) -> Any:
    if hint is int and isinstance(value, str):
        if value.lstrip("-").isdigit():
            return int(value)

    if hint is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)

    simple = {int, str, float, bool, list, dict}
    if hint in simple and not isinstance(value, hint):
        raise click.UsageError(
            f"Argument {name} of actor {actor.actor_name!r} must be {hint.__name__} "
            f"(got {value!r})."
        )

    return value


def report_embedded(obj: CliContext, started_at: datetime, as_json: bool) -> None:
    """Run the queued jobs in this process, print each outcome, exit 1 on a failure."""
    run_embedded(obj.broker)
    runs = list(
        JobRun.select()
        .where(JobRun.enqueued_at >= started_at)
        .order_by(JobRun.enqueued_at, JobRun.attempt)
    )
    if as_json:
        echo_json({"embedded": True, "runs": [run_as_dict(run) for run in runs]})
    else:
        for run in runs:
            detail = run.reason or run.error or ""
            duration = f" in {run.duration_ms} ms" if run.duration_ms is not None else ""
            click.echo(f"{run.actor} {run.message_id} attempt {run.attempt}: {run.status}{duration}")
            if detail:
                click.echo(f"  {detail}")

    if any(run.status == "failed" for run in runs):
        sys.exit(RET_FAILURE)


@click.command(short_help="Send a message to an actor.")
@click.argument("actor")
@click.argument("arguments", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--json-args", help="Keyword arguments as one JSON object, merged before KEY=VALUE pairs.")
@click.option("--delay", type=DURATION, help="Wait this long before the job runs, e.g. 30s, 10m, 2h.")
@json_option
@pass_context
def enqueue_command(
    obj: CliContext,
    actor: str,
    arguments: tuple[str, ...],
    json_args: str | None,
    delay: int | None,
    as_json: bool,
) -> None:
    """Send a message to ACTOR with keyword arguments given as KEY=VALUE.

    Values are read as JSON when they parse (numbers, true, lists) and as
    text otherwise.  Arguments are checked against the actor's signature.
    Without REDIS_URL the job runs in this process before the command exits.
    """
    declared = find_actor(obj.broker, actor)
    kwargs = check_arguments(declared, parse_pairs(arguments, json_args))
    started_at = datetime.now(UTC)
    message = declared.send_with_options(kwargs=kwargs, delay=delay)
    if obj.embedded:
        report_embedded(obj, started_at, as_json)
        return

    if as_json:
        echo_json(
            {
                "embedded": False,
                "message_id": message.message_id,
                "actor": message.actor_name,
                "queue": message.queue_name,
            }
        )
        return

    click.echo(f"Enqueued message {message.message_id} for actor {message.actor_name} on queue {message.queue_name}.")
    click.echo(f"Follow it with: wallie-cli runs show {message.message_id}")


@click.command(short_help="Send again the message of a recorded run.")
@click.argument("message_id", required=False)
@click.option("--actor", help="Replay runs of this actor (bulk replay).")
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    default="failed",
    show_default=True,
    help="Replay runs whose latest attempt has this status (bulk replay).",
)
@click.option("--since", type=MOMENT, help="Replay runs that finished after this time, ISO 8601 or an age like 24h.")
@click.option("--dry-run", is_flag=True, help="List the runs that would be replayed and send nothing.")
@json_option
@pass_context
def replay_command(
    obj: CliContext,
    message_id: str | None,
    actor: str | None,
    status: str,
    since: datetime | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Send a new message with the arguments of run MESSAGE_ID.

    Without MESSAGE_ID, replay every run that matches --actor, --status and
    --since.  Each replay is a new message whose run history points back to
    the run it replays.
    """
    if message_id is None and actor is None and since is None:
        raise click.UsageError("Give a MESSAGE_ID, or --actor and/or --since for a bulk replay.")

    if message_id is not None:
        runs = [get_runs(message_id)[-1]]
    else:
        runs = list(runs_to_replay(actor_name(actor) if actor else None, status, since))

    started_at = datetime.now(UTC)
    results = []
    for run in runs:
        entry = {"replay_of": run.message_id, "actor": run.actor}
        if not dry_run:
            try:
                entry["message_id"] = replay(obj.broker, run).message_id
            except ReplayRejected as error:
                entry["error"] = str(error)

        results.append(entry)

    if obj.embedded and not dry_run and results:
        report_embedded(obj, started_at, as_json)
        return

    if as_json:
        echo_json({"dry_run": dry_run, "replays": results})
        return

    if not results:
        click.echo("No run matches; nothing to replay.")

    for entry in results:
        if "error" in entry:
            click.echo(f"Skipped {entry['replay_of']}: {entry['error']}")
        elif dry_run:
            click.echo(f"Would replay {entry['actor']} run {entry['replay_of']}.")
        else:
            click.echo(f"Replayed {entry['actor']} run {entry['replay_of']} as {entry['message_id']}.")

    if any("error" in entry for entry in results):
        sys.exit(RET_FAILURE)


@click.group("runs", short_help="List and show recorded runs.")
def runs_group() -> None:
    """List and show the run history: one row per message attempt."""


@runs_group.command("list", short_help="List recent runs.")
@click.option("--actor", help="Only runs of this actor.")
@click.option("--status", type=click.Choice(STATUSES), help="Only runs with this status.")
@click.option("--since", type=MOMENT, help="Only runs after this time, ISO 8601 or an age like 24h.")
@click.option("--user-id", type=int, help="Only runs for this user id.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Show at most this many runs.")
@json_option
@pass_context
def runs_list_command(
    obj: CliContext,
    actor: str | None,
    status: str | None,
    since: datetime | None,
    user_id: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """List runs, newest first."""
    obj.ensure_schema()
    run_filter = RunFilter(
        actor=actor_name(actor) if actor else None,
        status=status,
        since=since,
        user_id=user_id,
        limit=limit,
    )
    runs = list_runs(run_filter)
    if not runs and actor:
        # Runs of an actor that no longer exists still list; an empty result
        # for a name no actor has is most likely a typo.
        find_actor(obj.broker, actor)

    if as_json:
        echo_json({"runs": [run_as_dict(run) for run in runs]})
        return

    if not runs:
        click.echo("No runs match.")
        return

    for run in runs:
        moment = run.finished_at or run.started_at or run.enqueued_at
        when = moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"
        click.echo(f"{when}  {run.message_id}  #{run.attempt}  {run.status:<9}  {run.actor}")


@runs_group.command("show", short_help="Show every attempt of one message.")
@click.argument("message_id")
@json_option
@pass_context
def runs_show_command(obj: CliContext, message_id: str, as_json: bool) -> None:
    """Show every attempt of message MESSAGE_ID with its arguments and error."""
    obj.ensure_schema()
    runs = [run_as_dict(run) for run in get_runs(message_id)]
    if as_json:
        echo_json({"message_id": message_id, "attempts": runs})
        return

    for run in runs:
        click.echo(f"Attempt {run['attempt']}: {run['status']}")
        for key in ("actor", "queue", "user_id", "args", "kwargs", "reason", "error_type",
                    "error", "replay_of", "enqueued_at", "started_at", "finished_at", "duration_ms"):
            if run[key] not in (None, "", [], {}):
                click.echo(f"  {key}: {run[key]}")

