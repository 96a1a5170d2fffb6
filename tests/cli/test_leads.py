"""Tests for ``wallie-cli reminders list``, ``leads list`` and ``analyze``."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from cli.main import cli
from tests.analysis.factory import buying_chat, make_chat
from wallie.db.models import LeadScore, Message, Reminder
from wallie.settings import Settings

EMAIL = "sam@example.com"
MADRID = ZoneInfo("Europe/Madrid")


def invoke(runner: CliRunner, *arguments: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(arguments))
    return result.exit_code, result.output


def test_analyze_runs_in_process(runner: CliRunner, cli_env: Settings) -> None:
    buying_chat(email=EMAIL)

    code, output = invoke(runner, "analyze", "--user", EMAIL)

    assert code == 0, output
    assert "conversation_analysis" in output
    assert Reminder.select().count() == 1
    assert LeadScore.select().count() == 1


def test_analyze_one_conversation(runner: CliRunner, cli_env: Settings) -> None:
    chat = buying_chat(email=EMAIL)
    other = buying_chat(email=EMAIL, contact_name="Bo Lind")

    code, output = invoke(
        runner, "analyze", "--user", EMAIL, "--conversation", str(chat.conversation.id)
    )

    assert code == 0, output
    pending = Message.select().where(Message.analyzed_at.is_null())
    assert {row.conversation_id for row in pending} == {other.conversation.id}


def test_analyze_with_nothing_new_prints_sentence(
    runner: CliRunner, cli_env: Settings
) -> None:
    make_chat(email=EMAIL)

    code, output = invoke(runner, "analyze", "--user", EMAIL)

    assert code == 0, output
    assert output == f"No conversation of {EMAIL} has messages waiting for analysis.\n"


def test_analyze_unknown_user_fails(runner: CliRunner, cli_env: Settings) -> None:
    result = runner.invoke(cli, ["analyze", "--user", "nobody@example.com"])

    assert result.exit_code == 1
    assert "nobody@example.com" in result.output


def test_analyze_someone_elses_conversation_fails(
    runner: CliRunner, cli_env: Settings
) -> None:
    make_chat(email=EMAIL)
    other = buying_chat(email="kim@example.com")

    code, _ = invoke(
        runner, "analyze", "--user", EMAIL, "--conversation", str(other.conversation.id)
    )

    assert code == 1


def test_reminders_json_has_local_offset(runner: CliRunner, cli_env: Settings) -> None:
    # Given an analysed chat of a user in Madrid (UTC+1 in winter, +2 in summer)
    buying_chat(email=EMAIL, time_zone="Europe/Madrid")
    invoke(runner, "analyze", "--user", EMAIL)
    reminder = Reminder.get()

    # When the reminders are listed as JSON
    code, output = invoke(runner, "reminders", "list", "--user", EMAIL, "--json")

    # Then the due time carries Madrid's offset
    assert code == 0, output
    [listed] = json.loads(output)["reminders"]
    due = datetime.fromisoformat(listed["due_at"])
    assert due == reminder.due_at
    assert due.utcoffset() == reminder.due_at.astimezone(MADRID).utcoffset()
    assert listed["contact"] == "Ana Ruiz"
    assert listed["source_message_id"] == reminder.source_message_id
    assert listed["text"] == reminder.text


def test_reminders_text_lists_each(runner: CliRunner, cli_env: Settings) -> None:
    buying_chat(email=EMAIL)
    invoke(runner, "analyze", "--user", EMAIL)

    code, output = invoke(runner, "reminders", "list", "--user", EMAIL)

    assert code == 0, output
    assert "You promised Ana Ruiz" in output
    assert "[Ana Ruiz]" in output


def test_reminders_empty_prints_sentence(runner: CliRunner, cli_env: Settings) -> None:
    make_chat(email=EMAIL)

    code, output = invoke(runner, "reminders", "list", "--user", EMAIL)

    assert code == 0, output
    assert output == f"{EMAIL} has no open reminders.\n"


def test_leads_json_sorted_by_latest_score(runner: CliRunner, cli_env: Settings) -> None:
    # Given two contacts, the first scored high then low, the second in between
    chat = make_chat(email=EMAIL)
    other = make_chat(email=EMAIL, contact_name="Bo Lind")
    reasons = [{"code": "price_question", "points": 12, "text": "Asked about price."}]
    for contact, value in ((chat.contact, 90), (other.contact, 50), (chat.contact, 20)):
        LeadScore.create(user=chat.user, contact=contact, score=value, reasons=reasons)

    # When the leads are listed
    code, output = invoke(runner, "leads", "list", "--user", EMAIL, "--json")

    # Then each contact shows its latest score, highest first
    assert code == 0, output
    leads = json.loads(output)["leads"]
    assert [(lead["contact"], lead["score"]) for lead in leads] == [
        ("Bo Lind", 50),
        ("Ana Ruiz", 20),
    ]
    assert leads[0]["reasons"] == reasons


def test_leads_text_shows_reasons(runner: CliRunner, cli_env: Settings) -> None:
    buying_chat(email=EMAIL)
    invoke(runner, "analyze", "--user", EMAIL)

    code, output = invoke(runner, "leads", "list", "--user", EMAIL)

    assert code == 0, output
    assert "Ana Ruiz" in output
    assert "Said they want to buy or order" in output


def test_leads_empty_prints_sentence(runner: CliRunner, cli_env: Settings) -> None:
    make_chat(email=EMAIL)

    code, output = invoke(runner, "leads", "list", "--user", EMAIL)

    assert code == 0, output
    assert output == f"No contact of {EMAIL} has a lead score yet.\n"
