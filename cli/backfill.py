"""``wallie-cli backfill``: send an actor once per conversation, user or day."""

from __future__ import annotations

import getpass
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from types import FrameType
from typing import Any

import click

from wallie.backfill import (
    DEFAULT_BATCH_SIZE,
    Filters,
    create_backfill,
    get_backfill,
    plan_backfill,
    run_backfill,
)
from wallie.db.models import CHANNELS, Backfill

from .common import CliContext, echo_json, json_option, pass_context
from .gdpr import find_user
from .jobs import actor_name, check_arguments, find_actor, parse_pairs

_RATE = re.compile(r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*(?:/\s*(?P<unit>s|m|h))?\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600}


class RateParamType(click.ParamType):
    """A send rate such as ``200/s``, ``600/m`` or ``unlimited``, in messages a second."""

    name = "rate"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float | None:
        if value is None or isinstance(value, float):
            return value

        text = str(value).strip().lower()
        if text == "unlimited":
            return None

        match = _RATE.match(text)
        if match is None or float(match["amount"]) <= 0:
            self.fail(f"{value!r} is not a rate; use for example 200/s, 600/m or unlimited.")

        return float(match["amount"]) / _UNIT_S[match["unit"] or "s"]


RATE = RateParamType()
DAY = click.DateTime(formats=["%Y-%m-%d"])


class _StopFlag:
    """Set by SIGINT or SIGTERM; the backfill pauses after the batch in flight."""

    def __init__(self) -> None:
        self.stopped = False

    def __call__(self) -> bool:
        return self.stopped


@contextmanager
def _stop_on_signals(flag: _StopFlag) -> Iterator[None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        if flag.stopped:
            raise KeyboardInterrupt

        flag.stopped = True
        click.echo("\nStopping after the batch in flight; press Ctrl-C again to abort at once.", err=True)

    previous = {number: signal.signal(number, handle) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@click.command(short_help="Send an actor once per conversation, user or day.")
@click.argument("actor", required=False)
@click.option("--user", "user_email", metavar="EMAIL", help="Only this user's conversations or days.")
@click.option("--all-users", is_flag=True, help="Every user's conversations or days.")
@click.option("--since", type=DAY, help="First day, YYYY-MM-DD (inclusive).")
@click.option("--until", type=DAY, help="Last day, YYYY-MM-DD (inclusive); default today for date actors.")
@click.option("--channel", type=click.Choice(CHANNELS), help="Only conversations of this channel.")
@click.option("--arg", "pairs", multiple=True, metavar="KEY=VALUE", help="A fixed argument sent with every message; repeatable.")
@click.option("--rate", type=RATE, default="50/s", show_default=True, help="Maximum send rate: N/s, N/m, N/h or unlimited.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=DEFAULT_BATCH_SIZE, show_default=True, help="Messages enqueued per Redis transaction.")
@click.option("--dry-run", is_flag=True, help="Print how many messages would be sent and send nothing.")
@click.option("--resume", "resume_id", type=int, metavar="BACKFILL_ID", help="Continue a stopped backfill after its last sent target.")
@json_option
@pass_context
def backfill_command(
    obj: CliContext,
    actor: str | None,
    user_email: str | None,
    all_users: bool,
    since: datetime | None,
    until: datetime | None,
    channel: str | None,
    pairs: tuple[str, ...],
    rate: float | None,
    batch_size: int,
    dry_run: bool,
    resume_id: int | None,
    as_json: bool,
) -> None:
    """Send ACTOR once for each target its signature takes.

    An actor with conversation_id gets one message per conversation, one
    with user_id and day, date or local_date one per user and day, one with user_id
    one per user, one with day one per day.  Ctrl-C or SIGTERM stops after
    the batch in flight; --resume BACKFILL_ID continues without sending a
    target twice.  Without REDIS_URL each batch runs in this process.
    """
    broker = obj.broker
    if resume_id is not None:
        backfill = get_backfill(resume_id)
        if actor is not None and actor_name(actor) != backfill.actor:
            raise click.UsageError(f"Backfill {resume_id} is for actor {backfill.actor!r}, not {actor!r}.")
    else:
        if actor is None:
            raise click.UsageError("Give an ACTOR, or --resume BACKFILL_ID.")

        declared = find_actor(broker, actor)
        filters = Filters(
            user_id=find_user(user_email).id if user_email else None,
            all_users=all_users,
            since=_day(since),
            until=_day(until),
            channel=channel,
            arguments=check_arguments(declared, parse_pairs(pairs, None), partial=True) if pairs else {},
        )
        plan = plan_backfill(declared, filters)
        if dry_run:
            _report_dry_run(plan.actor.actor_name, plan.kind, plan.total, as_json)
            return

        backfill = create_backfill(plan, rate_per_s=rate, requested_by=getpass.getuser())

    if not as_json:
        click.echo(f"Backfill {backfill.id}: {backfill.actor}, {backfill.total} targets, {backfill.sent} sent so far.")

    backfill = _send(obj, backfill, batch_size, rate, as_json)
    _report(backfill, as_json)


def _day(moment: datetime | None) -> date | None:
    return moment.date() if moment is not None else None


def _send(obj: CliContext, backfill: Backfill, batch_size: int, rate: float | None, as_json: bool) -> Backfill:
    flag = _StopFlag()
    remaining = max(backfill.total - backfill.sent, 0)
    show_bar = not as_json and sys.stderr.isatty()
    with _stop_on_signals(flag):
        if not show_bar:
            return run_backfill(obj.broker, backfill, batch_size=batch_size, rate_per_s=rate, should_stop=flag)

        with click.progressbar(length=remaining, label="Sending", file=sys.stderr) as bar:
            return run_backfill(
                obj.broker,
                backfill,
                batch_size=batch_size,
                rate_per_s=rate,
                should_stop=flag,
                on_progress=bar.update,
            )


def _report_dry_run(actor: str, kind: str, total: int, as_json: bool) -> None:
    if as_json:
        echo_json({"dry_run": True, "actor": actor, "target_kind": kind, "total": total})
        return

    if total == 0:
        click.echo(f"No {kind} targets match; {actor} would not be sent.")
        return

    click.echo(f"Would send {actor} {total} times, once per {kind.replace('_', ' and ')}.")


def _report(backfill: Backfill, as_json: bool) -> None:
    if as_json:
        echo_json(
            {
                "backfill_id": backfill.id,
                "actor": backfill.actor,
                "status": backfill.status,
                "total": backfill.total,
                "sent": backfill.sent,
                "cursor": backfill.cursor,
            }
        )
        return

    if backfill.status == "paused":
        click.echo(f"Paused backfill {backfill.id} after {backfill.sent} of {backfill.total} messages.")
        click.echo(f"Resume with: wallie-cli backfill --resume {backfill.id}")
        return

    click.echo(f"Finished backfill {backfill.id}: sent {backfill.sent} messages.")
