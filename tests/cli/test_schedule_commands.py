from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from cli.main import cli
from tests.reports import factories
from wallie.settings import Settings


def test_inspect_schedule_lists_periodic_actors(cli_env: Settings, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["inspect", "schedule", "--json"])

    assert result.exit_code == 0, result.output
    rows = {row["actor"]: row for row in json.loads(result.output)["periodic"]}
    assert rows["reminder_check"]["cron"] == "0 * * * *"
    assert rows["local_time_tick"]["queue"] == "schedule"
    assert rows["reminder_check"]["next_run"].endswith(":00:00+00:00")


def test_summary_preview_prints_text(cli_env: Settings, runner: CliRunner) -> None:
    user = factories.user("sam@example.com", "Europe/Amsterdam")
    factories.reminder(user, "Call <Ana>", datetime(2026, 3, 1, tzinfo=UTC))

    result = runner.invoke(cli, ["summary", "preview", "--user", "sam@example.com", "--date", "2026-03-10"])

    assert result.exit_code == 0, result.output
    assert "Subject: Your Wallie summary for Tuesday 10 March" in result.output
    assert "- Call <Ana>, due" in result.output


def test_summary_preview_html_is_escaped(cli_env: Settings, runner: CliRunner) -> None:
    user = factories.user("sam@example.com", "Europe/Amsterdam")
    factories.reminder(user, "Call <Ana>", datetime(2026, 3, 1, tzinfo=UTC))

    result = runner.invoke(cli, ["summary", "preview", "--user", "sam@example.com", "--date", "2026-03-10", "--html"])

    assert "Call &lt;Ana&gt;" in result.output


def test_summary_preview_unknown_user_fails(cli_env: Settings, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["summary", "preview", "--user", "nobody@example.com"])

    assert result.exit_code == 1
    assert "No user matches 'nobody@example.com'" in result.output


def test_report_preview_rejects_bad_week(cli_env: Settings, runner: CliRunner) -> None:
    factories.user("sam@example.com", "UTC")

    result = runner.invoke(cli, ["report", "preview", "--user", "sam@example.com", "--week", "49"])

    assert result.exit_code == 2
    assert "is not an ISO week" in result.output


def test_report_preview_empty_week_says_so(cli_env: Settings, runner: CliRunner) -> None:
    factories.user("sam@example.com", "UTC")

    result = runner.invoke(cli, ["report", "preview", "--user", "sam@example.com", "--week", "2026-W49"])

    assert result.exit_code == 0
    assert "no report would be sent" in result.output


def test_report_preview_prints_metrics(cli_env: Settings, runner: CliRunner) -> None:
    user = factories.user("sam@example.com", "UTC")
    chat = factories.conversation(user, factories.contact(user, "Ana"))
    factories.message(chat, "inbound", datetime(2026, 12, 1, 9, tzinfo=UTC))
    factories.message(chat, "outbound", datetime(2026, 12, 1, 9, tzinfo=UTC) + timedelta(minutes=30))

    result = runner.invoke(cli, ["report", "preview", "--user", "sam@example.com", "--week", "2026-W49"])

    assert result.exit_code == 0, result.output
    assert "Median reply time:  30 min" in result.output
