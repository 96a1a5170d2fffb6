"""``wallie-cli usage`` and ``limits``: spend, caps, ceilings and pauses."""

from __future__ import annotations

import getpass
from datetime import datetime
from decimal import Decimal
from typing import Any

import click

from wallie.db.fields import utcnow
from wallie.db.models import LimitOverride, User
from wallie.errors import NotFound
from wallie.limits import (
    LIMIT_NAMES,
    PLANS,
    UnknownLimit,
    check_plan,
    limit_for,
    parse_limit_value,
    provider_limits,
    set_limit,
)
from wallie.safety import PAUSE_OPERATOR, pause, resume
from wallie.usage import month_start
from wallie.usage_summary import LimitUse, UsageRow, UsageSummary, parse_month, summarize

from .common import CliContext, echo_json, json_option, pass_context


def find_user(email: str) -> User:
    """Return the user with address ``email``.

    Raises:
      NotFound: No user has this address.
    """
    user = User.get_or_none(User.email == email.strip().lower()) or User.get_or_none(
        User.email == email
    )
    if user is None:
        raise NotFound("user", email, "Check the address with the web app's user list.")

    return user


def _month_option(value: str | None) -> datetime:
    if value is None:
        return month_start()

    try:
        return parse_month(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--month") from None


@click.command(short_help="Calls, tokens and cost of a month against caps and ceilings.")
@click.option("--user", "email", default=None, help="A user's email; default: the whole deployment.")
@click.option("--month", default=None, help="Month as YYYY-MM (UTC); default: this month.")
@json_option
@pass_context
def usage_command(obj: CliContext, email: str | None, month: str | None, as_json: bool) -> None:
    """Show a month's calls, tokens and cost by provider and actor.

    With --user, the totals are compared with the user's monthly caps and
    cost ceiling; without it, with WALLIE_DEPLOYMENT_COST_CEILING_USD.
    """
    start = _month_option(month)
    obj.ensure_schema()
    user = find_user(email) if email else None
    summary = summarize(user, start, obj.settings)
    if as_json:
        echo_json(_summary_document(summary))
        return

    _print_summary(summary)


def _summary_document(summary: UsageSummary) -> dict[str, Any]:
    user = summary.user
    return {
        "month": summary.month,
        "user": None if user is None else _user_document(user),
        "by_provider": [_row_document(row) for row in summary.by_provider()],
        "by_actor": [_row_document(row) for row in summary.rows],
        "total": _row_document(summary.total()),
        "limits": [_limit_document(use) for use in summary.limits],
    }


def _user_document(user: User) -> dict[str, Any]:
    paused = user.paid_work_paused_until
    return {
        "id": user.id,
        "email": user.email,
        "plan": user.plan,
        "paid_work_paused_until": paused.isoformat() if paused and paused > utcnow() else None,
        "pause_reason": user.pause_reason if paused and paused > utcnow() else "",
    }


def _row_document(row: UsageRow) -> dict[str, Any]:
    return {
        "provider": row.provider,
        "actor": row.actor,
        "calls": row.calls,
        "tokens": row.tokens,
        "audio_minutes": str(row.audio_minutes),
        "cost_usd": str(row.cost_usd.quantize(Decimal("0.000001"))),
    }


def _limit_document(use: LimitUse) -> dict[str, Any]:
    percent = use.percent
    return {
        "name": use.name,
        "used": str(use.used),
        "limit": str(use.limit),
        "percent": None if percent is None else float(percent),
    }


def _print_summary(summary: UsageSummary) -> None:
    user = summary.user
    who = "the deployment" if user is None else f"user {user.id} ({user.email}, plan {user.plan})"
    click.echo(f"Usage of {who} in {summary.month} (UTC).")
    if user is not None and user.paid_work_paused_until and user.paid_work_paused_until > utcnow():
        click.echo(
            f"Paid work is paused until {user.paid_work_paused_until:%Y-%m-%d %H:%M} UTC: "
            f"{user.pause_reason}"
        )

    if not summary.rows:
        click.echo("No usage was recorded in this month.")
    else:
        click.echo("")
        _print_rows("PROVIDER", summary.by_provider(), with_actor=False)
        click.echo("")
        _print_rows("PROVIDER", summary.rows, with_actor=True)

    click.echo("")
    click.echo(f"{'LIMIT':34} {'USED':>14} {'LIMIT':>14} {'PERCENT':>8}")
    for use in summary.limits:
        percent = "-" if use.percent is None else f"{use.percent}%"
        click.echo(f"{use.name:34} {_number(use.used):>14} {_number(use.limit):>14} {percent:>8}")


def _print_rows(title: str, rows: list[UsageRow], *, with_actor: bool) -> None:
    actor = f" {'ACTOR':28}" if with_actor else ""
    click.echo(f"{title:10}{actor} {'CALLS':>9} {'TOKENS':>12} {'AUDIO MIN':>10} {'COST USD':>12}")
    for row in rows:
        actor = f" {row.actor or '-':28}" if with_actor else ""
        click.echo(
            f"{row.provider:10}{actor} {row.calls:>9} {row.tokens:>12} "
            f"{row.audio_minutes:>10} {row.cost_usd:>12.4f}"
        )


def _number(value: Decimal) -> str:
    return f"{value:,.2f}" if value != value.to_integral_value() else f"{int(value):,}"


@click.group(short_help="Show and change caps, ceilings and pauses.")
def limits_group() -> None:
    """Show and change usage caps, cost ceilings and paid-work pauses."""


@limits_group.command("show", short_help="Plans, overrides and provider rate limits.")
@click.option("--user", "email", default=None, help="Show the limits that apply to this user's email.")
@json_option
@pass_context
def limits_show_command(obj: CliContext, email: str | None, as_json: bool) -> None:
    """Show each plan's caps, operators' overrides and the provider rate limits."""
    obj.ensure_schema()
    user = find_user(email) if email else None
    document = {
        "plans": _plans_document(),
        "overrides": _overrides_document(user),
        "providers": _providers_document(obj),
        "deployment_cost_ceiling_usd": str(obj.settings.deployment_cost_ceiling_usd),
        "user": None if user is None else {
            **_user_document(user),
            "limits": {name: str(limit_for(user, name)) for name in LIMIT_NAMES},
        },
    }
    if as_json:
        echo_json(document)
        return

    _print_limits(document)


def _plans_document() -> dict[str, dict[str, str]]:
    plans = {}
    for plan in PLANS:
        overrides = {
            row.name: row.value
            for row in LimitOverride.select().where(
                LimitOverride.user.is_null() & (LimitOverride.plan == plan)
            )
        }
        plans[plan] = {name: overrides.get(name, str(PLANS[plan][name])) for name in LIMIT_NAMES}

    return plans


def _overrides_document(user: User | None) -> list[dict[str, Any]]:
    query = LimitOverride.select().order_by(LimitOverride.plan, LimitOverride.user, LimitOverride.name)
    if user is not None:
        query = query.where((LimitOverride.user == user) | (
            LimitOverride.user.is_null() & (LimitOverride.plan == user.plan)
        ))

    return [
        {
            "scope": f"user:{row.user_id}" if row.user_id is not None else f"plan:{row.plan}",
            "name": row.name,
            "value": row.value,
            "updated_at": row.updated_at.isoformat(),
        }
        for row in query
    ]


def _providers_document(obj: CliContext) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "windows": [
                {"name": window.name, "limit": window.limit, "window_ms": window.window_ms}
                for window in limits.windows
            ],
            "concurrency": limits.concurrency,
        }
        for name, limits in provider_limits(obj.settings).items()
    }


def _print_limits(document: dict[str, Any]) -> None:
    plans = document["plans"]
    click.echo(f"{'LIMIT':34}" + "".join(f"{plan:>12}" for plan in plans))
    for name in LIMIT_NAMES:
        click.echo(f"{name:34}" + "".join(f"{plans[plan][name]:>12}" for plan in plans))

    click.echo(f"Deployment cost ceiling: ${document['deployment_cost_ceiling_usd']} a month.")
    click.echo("")
    if document["overrides"]:
        click.echo("Overrides:")
        for row in document["overrides"]:
            click.echo(f"  {row['scope']:16} {row['name']:34} {row['value']}")
    else:
        click.echo("No overrides are set.")

    user = document["user"]
    if user is not None:
        click.echo("")
        click.echo(f"Limits of user {user['id']} ({user['email']}, plan {user['plan']}):")
        for name, value in user["limits"].items():
            click.echo(f"  {name:34} {value}")

        if user["paid_work_paused_until"]:
            click.echo(f"  Paid work paused until {user['paid_work_paused_until']}: {user['pause_reason']}")

    click.echo("")
    click.echo("Provider rate limits:")
    for name, provider in document["providers"].items():
        parts = [f"{w['limit']} {w['name']} per {w['window_ms']} ms" for w in provider["windows"]]
        if provider["concurrency"] is not None:
            parts.append(f"{provider['concurrency']} concurrent")

        click.echo(f"  {name:10} {', '.join(parts)}")


@limits_group.command(
    "set",
    short_help="Override a cap or ceiling for a user or a plan.",
    # A negative VALUE reaches the value check instead of reading as an option.
    context_settings={"ignore_unknown_options": True},
)
@click.option("--user", "email", default=None, help="Email of the user the override applies to.")
@click.option("--plan", default=None, help="Plan the override applies to (free, pro, team).")
@click.option("--operator", default=None, help="Who makes the change, for the audit log; default: the OS user.")
@click.argument("name")
@click.argument("value")
@json_option
@pass_context
def limits_set_command(
    obj: CliContext, email: str | None, plan: str | None, operator: str | None, name: str,
    value: str, as_json: bool,
) -> None:
    """Set limit NAME to VALUE for one user or a whole plan; the audit log records it.

    Caps are counts (tokens_per_month ...), cost_ceiling_usd is dollars a month.
    """
    if (email is None) == (plan is None):
        raise click.UsageError("Give exactly one of --user EMAIL and --plan PLAN.")

    _check_limit_arguments(plan, name, value)
    obj.ensure_schema()
    user = find_user(email) if email else None
    number = set_limit(name, value, user=user, plan=plan, operator=operator or _os_user())
    target = f"user {user.id} ({user.email})" if user is not None else f"plan {plan}"
    if as_json:
        echo_json({"target": "user" if user else "plan", "user_id": user.id if user else None,
                   "plan": plan, "name": name, "value": str(number)})
        return

    click.echo(f"Set {name} to {number} for {target}.")


def _check_limit_arguments(plan: str | None, name: str, value: str) -> None:
    try:
        if plan is not None:
            check_plan(plan)

        parse_limit_value(name, value)
    except UnknownLimit as error:
        raise click.UsageError(str(error)) from None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="VALUE") from None


@limits_group.command("pause", short_help="Pause a user's paid work for some hours.")
@click.option("--user", "email", required=True, help="Email of the user whose paid work pauses.")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True, max=24 * 366), required=True,
              help="Length of the pause, in hours (at most a year).")
@click.option("--operator", default=None, help="Who pauses, for the audit log; default: the OS user.")
@pass_context
def limits_pause_command(obj: CliContext, email: str, hours: float, operator: str | None) -> None:
    """Defer the user's paid jobs (AI analysis, transcription) for HOURS hours.

    Jobs with an unpaid path run it instead; the others wait for the end of the pause.
    """
    obj.ensure_schema()
    user = find_user(email)
    who = operator or _os_user()
    until = pause(user, hours, f"{PAUSE_OPERATOR}: paused by {who}", operator=who)
    click.echo(f"Paused paid work of user {user.id} until {until:%Y-%m-%d %H:%M} UTC.")


@limits_group.command("resume", short_help="Lift a pause of a user's paid work.")
@click.option("--user", "email", required=True, help="Email of the user whose pause ends.")
@click.option("--operator", default=None, help="Who resumes, for the audit log; default: the OS user.")
@pass_context
def limits_resume_command(obj: CliContext, email: str, operator: str | None) -> None:
    """Lift the user's pause now, whatever set it; deferred jobs run when they come back."""
    obj.ensure_schema()
    user = find_user(email)
    if resume(user, operator=operator or _os_user()):
        click.echo(f"Resumed paid work of user {user.id}.")
    else:
        click.echo(f"Paid work of user {user.id} was not paused.")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
