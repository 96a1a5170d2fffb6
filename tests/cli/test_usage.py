"""Tests for ``wallie-cli usage`` and ``limits show/set/pause/resume``."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner

from cli.main import cli
from wallie.db.fields import utcnow
from wallie.db.models import AuditLog, LimitOverride, UsageRecord, User
from wallie.settings import Settings


@pytest.fixture
def ana(cli_env: Settings) -> User:
    user = User.create(email="ana@example.com", plan="free")
    now = utcnow()
    for _ in range(3):
        UsageRecord.create(user=user, provider="openai", actor="analyze", calls=1,
                           tokens_in=1_000, tokens_out=500, cost_usd=Decimal("0.5"), created_at=now)

    UsageRecord.create(user=user, provider="gmail", actor="gmail_sync", calls=40, created_at=now)
    UsageRecord.create(user=user, provider="openai", actor="analyze", calls=1, cost_usd=Decimal("9"),
                       created_at=now - timedelta(days=40))
    return user


def invoke(runner: CliRunner, *args: str):
    return runner.invoke(cli, list(args))


def test_usage_user_json_by_provider_and_actor(runner: CliRunner, ana: User) -> None:
    result = invoke(runner, "usage", "--user", "ana@example.com", "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    providers = {row["provider"]: row for row in document["by_provider"]}
    assert providers["openai"]["calls"] == 3
    assert providers["openai"]["tokens"] == 4_500
    assert providers["openai"]["cost_usd"] == "1.500000"
    assert providers["gmail"]["calls"] == 40
    assert [(row["provider"], row["actor"]) for row in document["by_actor"]] == [
        ("gmail", "gmail_sync"), ("openai", "analyze"),
    ]


def test_usage_user_against_caps(runner: CliRunner, ana: User) -> None:
    result = invoke(runner, "usage", "--user", "ana@example.com", "--json")

    limits = {row["name"]: row for row in json.loads(result.output)["limits"]}
    assert limits["cost_ceiling_usd"]["used"] == "1.500000"
    assert limits["cost_ceiling_usd"]["limit"] == "2.00"
    assert limits["cost_ceiling_usd"]["percent"] == 75.0
    assert limits["tokens_per_month"]["used"] == "4500"
    assert limits["tokens_per_month"]["percent"] == 1.5


def test_usage_text_shows_percent(runner: CliRunner, ana: User) -> None:
    result = invoke(runner, "usage", "--user", "ana@example.com")

    assert result.exit_code == 0, result.output
    assert "gmail_sync" in result.output
    assert "75.0%" in result.output


def test_usage_deployment_against_ceiling(runner: CliRunner, ana: User, cli_env: Settings) -> None:
    result = invoke(runner, "usage", "--json")

    document = json.loads(result.output)
    [ceiling] = document["limits"]
    assert document["user"] is None
    assert ceiling["name"] == "deployment_cost_ceiling_usd"
    assert Decimal(ceiling["limit"]) == cli_env.deployment_cost_ceiling_usd
    assert ceiling["used"] == "1.500000"


def test_usage_other_month(runner: CliRunner, ana: User) -> None:
    month = (utcnow() - timedelta(days=40)).strftime("%Y-%m")

    result = invoke(runner, "usage", "--month", month, "--json")

    assert json.loads(result.output)["total"]["cost_usd"] == "9.000000"


def test_usage_empty_month_prints_sentence(runner: CliRunner, ana: User) -> None:
    result = invoke(runner, "usage", "--month", "2001-01")

    assert result.exit_code == 0, result.output
    assert "No usage was recorded in this month." in result.output


def test_usage_invalid_month_exits_2(runner: CliRunner, cli_env: Settings) -> None:
    result = invoke(runner, "usage", "--month", "2026-13")

    assert result.exit_code == 2
    assert "YYYY-MM" in result.output


def test_usage_unknown_user_fails(runner: CliRunner, cli_env: Settings) -> None:
    result = invoke(runner, "usage", "--user", "nobody@example.com")

    assert result.exit_code == 1
    assert "nobody@example.com" in result.output


def test_limits_show_json(runner: CliRunner, ana: User) -> None:
    result = invoke(runner, "limits", "show", "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["plans"]["free"]["cost_ceiling_usd"] == "2.00"
    assert document["providers"]["openai"]["windows"][0]["name"] == "requests"
    assert document["providers"]["graph"]["concurrency"] is not None
    assert document["overrides"] == []


def test_limits_set_user_writes_override_and_audit(runner: CliRunner, ana: User) -> None:
    result = invoke(runner, "limits", "set", "--user", "ana@example.com",
                    "cost_ceiling_usd", "5", "--operator", "bob")

    assert result.exit_code == 0, result.output
    override = LimitOverride.get(LimitOverride.user == ana)
    audit = AuditLog.get(AuditLog.action == "limit.set")
    assert override.value == "5"
    assert audit.operator == "bob"
    assert audit.user_id == ana.id
    assert audit.details == {"name": "cost_ceiling_usd", "value": "5"}


def test_limits_set_plan_shows_in_limits_show(runner: CliRunner, ana: User) -> None:
    invoke(runner, "limits", "set", "--plan", "free", "tokens_per_month", "1000")

    document = json.loads(invoke(runner, "limits", "show", "--user", "ana@example.com", "--json").output)

    assert document["plans"]["free"]["tokens_per_month"] == "1000"
    assert document["user"]["limits"]["tokens_per_month"] == "1000"
    assert document["overrides"][0]["scope"] == "plan:free"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--plan", "gold", "tokens_per_month", "5"], "Valid plans: free, pro, team"),
        (["--plan", "free", "tokenz", "5"], "Valid limits: ai_analyses_per_day"),
        (["--plan", "free", "tokens_per_month", "-5"], "must be 0 or more"),
        (["--plan", "free", "tokens_per_month", "many"], "must be a number"),
        (["--plan", "free", "tokens_per_month", "nan"], "must be a finite number"),
        (["--plan", "free", "tokens_per_month", "inf"], "must be a finite number"),
        (["--plan", "free", "tokens_per_month", "2.5"], "must be a whole number"),
        (["--plan", "free", "tokens_per_month", "1e400"], "must be at most"),
        (["tokens_per_month", "5"], "exactly one of --user EMAIL and --plan PLAN"),
    ],
)
def test_limits_set_errors_exit_2(
    runner: CliRunner, ana: User, arguments: list[str], message: str
) -> None:
    result = invoke(runner, "limits", "set", *arguments)

    assert result.exit_code == 2
    assert message in result.output
    assert LimitOverride.select().count() == 0
    assert AuditLog.select().count() == 0


def test_limits_pause_and_resume_audited(runner: CliRunner, ana: User) -> None:
    paused = invoke(runner, "limits", "pause", "--user", "ana@example.com", "--hours", "2",
                    "--operator", "bob")
    during = User.get_by_id(ana.id)
    resumed = invoke(runner, "limits", "resume", "--user", "ana@example.com", "--operator", "bob")

    assert paused.exit_code == 0, paused.output
    assert resumed.exit_code == 0, resumed.output
    assert during.paid_work_paused_until > utcnow() + timedelta(hours=1)
    assert during.pause_reason == "operator: paused by bob"
    assert User.get_by_id(ana.id).paid_work_paused_until is None
    actions = [row.action for row in AuditLog.select().order_by(AuditLog.id)]
    assert actions == ["usage.pause", "usage.resume"]


def test_limits_pause_shown_in_usage(runner: CliRunner, ana: User) -> None:
    invoke(runner, "limits", "pause", "--user", "ana@example.com", "--hours", "1")

    document = json.loads(invoke(runner, "usage", "--user", "ana@example.com", "--json").output)

    assert document["user"]["pause_reason"].startswith("operator:")


@pytest.mark.parametrize("hours", ["0", "1e9"])
def test_limits_pause_rejects_out_of_range_hours(runner: CliRunner, ana: User, hours: str) -> None:
    result = invoke(runner, "limits", "pause", "--user", "ana@example.com", "--hours", hours)

    assert result.exit_code == 2
    assert User.get_by_id(ana.id).paid_work_paused_until is None


@pytest.mark.parametrize(("typed", "stored"), [("1e3", "1000"), ("2.0", "2"), ("0500", "500")])
def test_limits_set_stores_counts_as_whole_numbers(
    runner: CliRunner, ana: User, typed: str, stored: str
) -> None:
    result = invoke(runner, "limits", "set", "--user", "ana@example.com", "tokens_per_month", typed)

    assert result.exit_code == 0, result.output
    assert LimitOverride.get().value == stored
