"""``wallie-cli summary preview`` and ``report preview``: render mail without sending it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import click

from wallie.db.models import User
from wallie.errors import NotFound
from wallie.reports.daily import preview_daily_summary, render_daily_summary
from wallie.reports.weekly import build_weekly_report, render_weekly_report
from wallie.reports.windows import parse_iso_week
from wallie.schedule.local import zone_of

from .common import CliContext, pass_context

_user_option = click.option("--user", "email", required=True, help="Email address of the user.")
_html_option = click.option("--html", "as_html", is_flag=True, help="Print the HTML part instead of the text part.")


def _find_user(email: str) -> User:
    user = User.get_or_none(User.email == email)
    if user is None:
        raise NotFound("user", email, "Check the address with the web app's user list.")

    return user


def _today(user: User) -> date:
    return datetime.now(ZoneInfo("UTC")).astimezone(zone_of(user.time_zone)).date()


@click.group("summary", short_help="The daily summary mail.")
def summary_group() -> None:
    """The daily summary mail."""


@summary_group.command("preview", short_help="Render a user's daily summary without sending it.")
@_user_option
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="Local date of the summary (it covers the day before). Default: the user's today.")
@_html_option
@pass_context
def summary_preview_command(obj: CliContext, email: str, day: datetime | None, as_html: bool) -> None:
    """Print the daily summary of a user as it would be mailed, without sending it."""
    obj.ensure_schema()
    user = _find_user(email)
    local_date = day.date() if day else _today(user)
    summary = preview_daily_summary(user, local_date)
    if summary.is_empty:
        click.echo(f"Nothing to tell {email} on {local_date}: no summary would be sent.")
        return

    content = render_daily_summary(summary)
    click.echo(content.html if as_html else f"Subject: {content.subject}\n\n{content.text}")


@click.group("report", short_help="The weekly report mail.")
def report_group() -> None:
    """The weekly report mail."""


@report_group.command("preview", short_help="Render a user's weekly report without sending it.")
@_user_option
@click.option("--week", help="ISO week the report covers, such as 2026-W49. Default: the last full week.")
@_html_option
@pass_context
def report_preview_command(obj: CliContext, email: str, week: str | None, as_html: bool) -> None:
    """Print the weekly report of a user as it would be mailed, without sending it."""
    obj.ensure_schema()
    user = _find_user(email)
    if week is None:
        today = _today(user)
        monday = today - timedelta(days=today.weekday() + 7)
    else:
        try:
            monday = parse_iso_week(week)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--week") from None

    report = build_weekly_report(user, monday)
    if report.is_empty:
        click.echo(f"Nothing to tell {email} for {report.week}: no report would be sent.")
        return

    content = render_weekly_report(report)
    click.echo(content.html if as_html else f"Subject: {content.subject}\n\n{content.text}")
