from __future__ import annotations

import json
import zipfile
from pathlib import Path

import dramatiq
import peewee
from click.testing import CliRunner

from cli.main import cli
from tests.gdpr.factory import fill_account
from wallie.broker import setup_broker
from wallie.db.models import Contact, DeletionRequest, User
from wallie.settings import Settings


def test_gdpr_delete_dry_run_counts(runner: CliRunner, cli_env: Settings) -> None:
    account = fill_account("ana", cli_env, "+31611111111")

    result = runner.invoke(cli, ["gdpr-delete", "--user", account.user.email, "--dry-run", "--json"])

    document = json.loads(result.output)
    assert result.exit_code == 0, result.output
    assert document["tables"]["message"] == 1
    assert document["tables"]["user"] == 1
    assert document["files"]["media"] == 2
    assert document["files"]["uploads"] == 3
    assert User.get_or_none(User.id == account.user.id) is not None


def test_gdpr_delete_prompt_declined(runner: CliRunner, cli_env: Settings) -> None:
    account = fill_account("ana", cli_env, "+31611111111")

    result = runner.invoke(cli, ["gdpr-delete", "--user", account.user.email], input="n\n")

    assert result.exit_code == 1
    assert "for good?" in result.output
    assert User.get_or_none(User.id == account.user.id) is not None
    assert DeletionRequest.select().count() == 1  # the factory's own request only


def test_gdpr_delete_prompt_accepted(runner: CliRunner, cli_env: Settings) -> None:
    account = fill_account("ana", cli_env, "+31611111111")

    result = runner.invoke(cli, ["gdpr-delete", "--user", account.user.email, "--reference", "T-9"], input="y\n")

    assert result.exit_code == 0, result.output
    assert '"reference": "T-9"' in result.output
    assert User.get_or_none(User.id == account.user.id) is None


def test_gdpr_delete_yes_json(runner: CliRunner, cli_env: Settings) -> None:
    account = fill_account("ana", cli_env, "+31611111111")
    other = fill_account("bob", cli_env, "+31622222222")

    result = runner.invoke(
        cli,
        ["gdpr-delete", "--contact", "+31611111111", "--user", account.user.email, "--yes", "--json",
         "--requested-by", "ops", "--notify", "dpo@example.net"],
    )

    document = json.loads(result.output)
    assert result.exit_code == 0, result.output
    assert document["receipt"]["scope"] == "contact"
    assert document["receipt"]["tables"]["contact"] == 1
    assert document["receipt"]["requested_by"] == "ops"
    assert Contact.get_or_none(Contact.id == account.rows["client"].id) is None
    assert Contact.get_or_none(Contact.id == other.rows["client"].id) is not None
    assert any("dpo@example.net" in path.read_text() for path in cli_env.outbox_dir.glob("*.eml"))


def test_gdpr_delete_rejects_email_reference(runner: CliRunner, cli_env: Settings) -> None:
    account = fill_account("ana", cli_env, "+31611111111")

    result = runner.invoke(cli, ["gdpr-delete", "--user", account.user.email, "--yes", "--reference", "ana@example.com"])

    assert result.exit_code == 1
    assert "ticket number" in result.output


def test_gdpr_delete_unknown_user(runner: CliRunner, cli_env: Settings) -> None:
    result = runner.invoke(cli, ["gdpr-delete", "--user", "nobody@example.com", "--dry-run"])

    assert result.exit_code == 1
    assert "nobody@example.com" in result.output


def test_export_zip_contents(runner: CliRunner, cli_env: Settings, tmp_path: Path) -> None:
    account = fill_account("ana", cli_env, "+31611111111")
    fill_account("bob", cli_env, "+31622222222")
    target = tmp_path / "ana.zip"

    result = runner.invoke(cli, ["export", "--user", account.user.email, str(target)])

    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        messages = json.loads(archive.read("message.json"))
        mailboxes = json.loads(archive.read("mailbox.json"))
        users = json.loads(archive.read("user.json"))

    assert "manifest.json" in names
    assert "schedule_tick.json" not in names
    assert f"media/users/{account.user.id}/photo-ana.jpg" in names
    assert [message["user"] for message in messages] == [account.user.id]
    assert mailboxes[0]["token"] == "[redacted]"
    assert users[0]["email"] == account.user.email


def test_backfill_dry_run_and_run(runner: CliRunner, cli_env: Settings, db: peewee.Database) -> None:
    # Given an actor that takes a user and a day, declared on the command's broker
    import actors  # noqa: F401 - declares the product actors first

    broker = setup_broker(cli_env)
    seen: list[tuple[int, str]] = []

    @dramatiq.actor(broker=broker, queue_name="backfill_test", max_retries=0)
    def summarize_day(user_id: int, day: str) -> None:
        seen.append((user_id, day))

    user = User.create(email="ana@example.com")
    arguments = ["backfill", "summarize_day", "--user", user.email, "--since", "2026-03-01", "--until", "2026-03-04"]

    dry = runner.invoke(cli, [*arguments, "--dry-run"])
    result = runner.invoke(cli, [*arguments, "--json", "--rate", "1000/s"])

    assert dry.exit_code == 0, dry.output
    assert "Would send summarize_day 4 times" in dry.output
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["sent"] == 4
    assert seen == [(user.id, f"2026-03-0{day}") for day in (1, 2, 3, 4)]


def test_backfill_product_actors_dry_run(runner: CliRunner, cli_env: Settings, db: peewee.Database) -> None:
    import actors  # noqa: F401 - declares the product actors

    user = User.create(email="ana@example.com")
    days = ["--since", "2026-03-01", "--until", "2026-03-04"]

    fixed = runner.invoke(
        cli, ["backfill", "conversation_analysis", "--all-users", "--arg", "engine=offline", "--dry-run"]
    )
    summary = runner.invoke(cli, ["backfill", "daily_summary", "--user", user.email, *days, "--dry-run"])

    assert fixed.exit_code == 0, fixed.output
    assert summary.exit_code == 0, summary.output
    assert "Would send daily_summary 4 times" in summary.output


def test_backfill_rejects_bad_rate(runner: CliRunner, cli_env: Settings) -> None:
    result = runner.invoke(cli, ["backfill", "outbox_sweep", "--rate", "fast"])

    assert result.exit_code == 2
    assert "not a rate" in result.output


def test_gdpr_delete_rejects_contact_name(runner: CliRunner, cli_env: Settings) -> None:
    account = fill_account("ana", cli_env, "+31611111111")

    result = runner.invoke(cli, ["gdpr-delete", "--user", account.user.email, "--contact", "Ana Souza", "--dry-run"])

    assert result.exit_code == 2
    assert "email address" in result.output
    assert "+E.164" in result.output
    assert "contact id" in result.output
