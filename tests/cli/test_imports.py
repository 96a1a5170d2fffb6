"""Tests for ``wallie-cli import whatsapp``, ``import document`` and ``demo``."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import dramatiq
import pytest
from click.testing import CliRunner

from cli.imports import print_summary
from cli.main import cli
from tests.conftest import CORPUS
from tests.whatsapp.corpus_expected import EXPECTED
from wallie.db.models import Contact, Import, LeadScore, Message, Reminder, User
from wallie.broker import reset_broker, setup_broker
from wallie.storage import get_or_create_user
from wallie.whatsapp.importer import import_whatsapp
from wallie.settings import Settings, get_settings, reset_settings

EMAIL = "sam@example.com"

#: Keys that ``import whatsapp --json`` always prints.
SUMMARY_KEYS = {
    "messages", "system_messages", "media", "participants", "first_message_at",
    "last_message_at", "duplicates_skipped", "date_order", "date_order_source",
    "import_id", "unparsed_lines",
}


def sample(tmp_path: Path) -> Path:
    path = tmp_path / "WhatsApp Chat with Ana Souza.txt"
    source = resources.files("wallie") / "samples" / "whatsapp_sample.txt"
    path.write_bytes(source.read_bytes())
    return path


def import_json(runner: CliRunner, path: Path, *options: str) -> dict:
    result = runner.invoke(cli, ["import", "whatsapp", str(path), "--user", EMAIL,
                                 "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_whatsapp_json_summary(runner: CliRunner, cli_env: Settings, tmp_path: Path
                               ) -> None:
    document = import_json(runner, sample(tmp_path), "--me", "Sam Carter")

    assert SUMMARY_KEYS <= set(document)
    assert document["messages"] == 38
    assert document["system_messages"] == 4
    assert document["media"] == 2
    assert document["participants"] == ["+14155550132", "Ana Souza", "Sam Carter"]
    assert document["first_message_at"] == "2026-11-23T09:12:00+00:00"
    assert document["date_order"] == "mdy"


def test_whatsapp_reimport_skips_all(runner: CliRunner, cli_env: Settings, tmp_path: Path
                                     ) -> None:
    path = sample(tmp_path)
    import_json(runner, path, "--me", "Sam Carter")

    document = import_json(runner, path, "--me", "Sam Carter")

    assert document["messages"] == 0
    assert document["duplicates_skipped"] == 42


def test_whatsapp_creates_missing_user(runner: CliRunner, cli_env: Settings,
                                       tmp_path: Path) -> None:
    result = runner.invoke(cli, ["import", "whatsapp", str(sample(tmp_path)),
                                 "--user", EMAIL, "--me", "Sam Carter"])

    assert result.exit_code == 0, result.output
    assert f"Created user {EMAIL}" in result.stderr
    assert "Imported 38 messages" in result.stdout
    assert User.select().count() == 1


def test_whatsapp_unclear_me_lists_participants(
    runner: CliRunner, cli_env: Settings, tmp_path: Path
) -> None:
    result = runner.invoke(cli, ["import", "whatsapp", str(sample(tmp_path)),
                                 "--user", EMAIL])

    assert result.exit_code == 2
    assert "Set --me to one of: '+14155550132', 'Ana Souza', 'Sam Carter'" in result.stderr
    assert Message.select().count() == 0
    assert Contact.select().count() == 0
    # The user was created for this import only, so it went with it.
    assert User.select().count() == 0
    assert "Created user" not in result.stderr


def test_whatsapp_not_an_export(runner: CliRunner, cli_env: Settings, tmp_path: Path
                                ) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Call Ana on Monday\n", encoding="utf-8")

    result = runner.invoke(cli, ["import", "whatsapp", str(path), "--user", EMAIL,
                                 "--me", "Sam"])

    assert result.exit_code == 1
    assert "is not a WhatsApp chat export" in result.stderr
    assert Import.select().count() == 0
    assert User.select().count() == 0


def test_rejected_file_keeps_existing_user(
    runner: CliRunner, cli_env: Settings, tmp_path: Path
) -> None:
    # Given a user who exists before the import
    runner.invoke(cli, ["db", "migrate"])
    get_or_create_user(EMAIL, name="Sam Carter")
    path = tmp_path / "notes.txt"
    path.write_text("Call Ana on Monday\n", encoding="utf-8")

    # When a file that is not an export is imported for them
    result = runner.invoke(cli, ["import", "whatsapp", str(path), "--user", EMAIL])

    # Then the import fails and the user stays
    assert result.exit_code == 1
    assert User.select().where(User.email == EMAIL).count() == 1


def test_rejected_date_order_stores_nothing(
    runner: CliRunner, cli_env: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "WhatsApp Chat with Ana.txt"
    path.write_text("25/01/2024, 09:00 - Ana: Hi\n", encoding="utf-8")

    result = runner.invoke(cli, ["import", "whatsapp", str(path), "--user", EMAIL,
                                 "--me", "Ana", "--date-order", "mdy"])

    assert result.exit_code != 0
    assert "first number above 12" in result.stderr
    assert User.select().count() == 0


def test_rejected_document_stores_nothing(
    runner: CliRunner, cli_env: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "slides.key"
    path.write_bytes(b"\x00\x01binary")

    result = runner.invoke(cli, ["import", "document", str(path), "--user", EMAIL])

    assert result.exit_code != 0
    assert User.select().count() == 0


def test_rejected_file_keeps_user_in_use(
    runner: CliRunner, cli_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given another process that imports a chat for the user right after
    # this command created it, while this command reads a file it rejects
    chat = sample(tmp_path)

    def other_process_first(user: User, path: Path, settings: Settings, **options):
        import_whatsapp(user, chat, settings, me="Sam Carter")
        return import_whatsapp(user, path, settings, **options)

    monkeypatch.setattr("cli.imports.import_whatsapp", other_process_first)
    notes = tmp_path / "notes.txt"
    notes.write_text("Call Ana on Monday\n", encoding="utf-8")

    # When the file is rejected
    result = runner.invoke(cli, ["import", "whatsapp", str(notes), "--user", EMAIL])

    # Then the user and the other process's chat stay, and the notice of the
    # new user is printed
    assert result.exit_code == 1
    assert User.select().where(User.email == EMAIL).count() == 1
    assert Message.select().count() == 42
    assert "Created user" in result.stderr


def test_interrupted_import_announces_user(
    runner: CliRunner, cli_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an import interrupted with Ctrl-C
    def interrupted(*args, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr("cli.imports.import_whatsapp", interrupted)

    # When it runs for a new user
    result = runner.invoke(cli, ["import", "whatsapp", str(sample(tmp_path)),
                                 "--user", EMAIL])

    # Then the user stays, so the notice of its creation is printed
    assert result.exit_code != 0
    assert User.select().where(User.email == EMAIL).count() == 1
    assert "Created user" in result.stderr


@pytest.mark.parametrize(
    "expected", [e for e in EXPECTED if e.fallback == "dmy"], ids=lambda e: e.file[:2]
)
def test_whatsapp_corpus_counts(runner: CliRunner, cli_env: Settings, expected: object
                                ) -> None:
    path = CORPUS / "whatsapp" / expected.file
    if not path.is_file():
        pytest.skip(f"WhatsApp corpus not found at {path.parent}; set WALLIE_CORPUS.")

    document = import_json(runner, path, "--me", expected.participants[-1])

    assert document["messages"] == expected.messages - expected.system
    assert document["system_messages"] == expected.system
    assert document["media"] == expected.media
    assert document["participants"] == expected.participants
    assert document["unparsed_lines"] == expected.unparsed
    assert document["date_order"] == expected.date_order


def test_whatsapp_date_order_option(runner: CliRunner, cli_env: Settings) -> None:
    path = CORPUS / "whatsapp" / "14_android_es-style_nbsp-in-p.m._chatminer.txt"
    if not path.is_file():
        pytest.skip(f"WhatsApp corpus not found at {path.parent}; set WALLIE_CORPUS.")

    document = import_json(runner, path, "--me", "🤓", "--date-order", "mdy")

    assert document["date_order_source"] == "explicit"
    assert document["first_message_at"].startswith("2022-09-10T22:37")


def test_document_json(runner: CliRunner, cli_env: Settings, tmp_path: Path) -> None:
    path = tmp_path / "contacts.vcf"
    path.write_text("BEGIN:VCARD\nFN:Ana Souza\nTEL:+1 415 555 0101\nEND:VCARD\n",
                    encoding="utf-8")

    result = runner.invoke(cli, ["import", "document", str(path), "--user", EMAIL,
                                 "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["contacts_created"] == 1


def test_document_unknown_type(runner: CliRunner, cli_env: Settings, tmp_path: Path
                               ) -> None:
    path = tmp_path / "photo.heic"
    path.write_bytes(b"\0")

    result = runner.invoke(cli, ["import", "document", str(path), "--user", EMAIL])

    assert result.exit_code == 1
    assert "photo.heic: unknown type" in result.stderr


def test_demo_prints_leads_reminders_and_mail(runner: CliRunner, cli_env: Settings
                                              ) -> None:
    result = runner.invoke(cli, ["demo"])

    assert result.exit_code == 0, result.output
    assert "Imported 38 messages" in result.stdout
    assert "Ana Souza" in result.stdout
    assert "I'll call you tomorrow at 10" in result.stdout
    assert "Hot-lead mail written to" in result.stdout
    assert LeadScore.select().count() >= 1
    assert Reminder.select().count() >= 2


def test_demo_twice_adds_nothing(runner: CliRunner, cli_env: Settings) -> None:
    runner.invoke(cli, ["demo", "--user", EMAIL])

    result = runner.invoke(cli, ["demo", "--user", EMAIL])

    assert result.exit_code == 0, result.output
    assert "Skipped 42 messages already stored" in result.stdout
    assert Message.select().count() == 42


@pytest.fixture
def redis_cli(monkeypatch: pytest.MonkeyPatch, redis_settings: Settings, db: object
              ) -> Iterator[dramatiq.Broker]:
    """wallie-cli on Redis, with the product actors declared."""
    monkeypatch.setenv("WALLIE_HOME", str(redis_settings.home))
    monkeypatch.setenv("DATABASE_URL", redis_settings.database_url)
    monkeypatch.setenv("REDIS_URL", redis_settings.redis_url or "")
    reset_settings()
    reset_broker()
    import actors  # noqa: F401 - declares the product actors

    yield setup_broker(get_settings())
    reset_broker()
    reset_settings()


def test_whatsapp_with_redis_down_leaves_nothing(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, settings: Settings, db: object, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("WALLIE_HOME", str(settings.home))
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    reset_settings()
    reset_broker()
    try:
        result = runner.invoke(cli, ["import", "whatsapp", str(sample(tmp_path)),
                                     "--user", EMAIL, "--me", "Sam Carter"])
    finally:
        reset_broker()
        reset_settings()

    assert result.exit_code == 4, result.output
    assert "cannot reach Redis" in result.output
    assert User.select().where(User.email == EMAIL).count() == 0
    assert not (settings.home / "uploads").exists()


def test_whatsapp_on_redis_stages_and_enqueues(
    runner: CliRunner, redis_cli: dramatiq.Broker, tmp_path: Path
) -> None:
    result = runner.invoke(cli, ["import", "whatsapp", str(sample(tmp_path)),
                                 "--user", EMAIL, "--me", "Sam Carter", "--json"])

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    staged = get_settings().home / document["path"]
    user = User.get(User.email == EMAIL)
    assert document["embedded"] is False
    assert document["path"].startswith(f"uploads/users/{user.id}/")
    assert staged.name.endswith("-WhatsApp Chat with Ana Souza.txt")
    assert staged.is_file()
    assert Message.select().count() == 0


def ambiguous_sample(tmp_path: Path, name: str = "ana.txt") -> Path:
    """Write the sample chat with days of the month under 13, read in either order."""
    text = sample(tmp_path).read_text(encoding="utf-8")
    for day in ("23", "24", "25", "27"):
        text = text.replace(f"11/{day}/26", f"11/0{int(day) - 20}/26")
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def import_text(runner: CliRunner, path: Path, *options: str) -> str:
    result = runner.invoke(cli, ["import", "whatsapp", str(path), "--user", EMAIL,
                                 "--me", "Sam Carter", *options])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_whatsapp_renamed_copy_skips_all(
    runner: CliRunner, cli_env: Settings, tmp_path: Path
) -> None:
    # Given the sample imported once
    first = import_json(runner, sample(tmp_path), "--me", "Sam Carter")
    copy = tmp_path / "ana-copy.txt"
    copy.write_bytes(sample(tmp_path).read_bytes())

    # When a copy under another name is imported
    output = import_text(runner, copy)

    # Then nothing is stored again and the output names the earlier import
    assert "Imported 0 messages, 0 system events and 0 media files" in output
    assert "Skipped 42 messages already stored." in output
    assert f"The file has the same contents as import {first['import_id']}." in output
    assert Message.select().count() == 42
    assert Import.select().count() == 2


def test_whatsapp_new_date_order_replaces_import(
    runner: CliRunner, cli_env: Settings, tmp_path: Path
) -> None:
    # Given an ambiguous chat read day first from a British user's locale
    get_or_create_user(EMAIL, locale="en-GB")
    path = ambiguous_sample(tmp_path)
    first = import_text(runner, path)
    first_id = Import.get().id
    reminders = Reminder.select().count()
    assert "Dates read in dmy order (from the locale en-GB; pass --date-order if it " \
        "is wrong)." in first
    assert reminders >= 1

    # When it is imported again month first
    output = import_text(runner, path, "--date-order", "mdy")

    # Then the earlier import is replaced, so nothing is stored twice
    assert f"Replaced import {first_id}, which read the dates in dmy order." in output
    assert "Imported 38 messages, 4 system events and 2 media files" in output
    assert "Dates read in mdy order (from --date-order)." in output
    assert "Skipped" not in output
    assert Message.select().count() == 42
    assert Reminder.select().count() == reminders
    assert Import.get_by_id(first_id).status == "replaced"


def test_whatsapp_replaced_import_in_json(
    runner: CliRunner, cli_env: Settings, tmp_path: Path
) -> None:
    path = ambiguous_sample(tmp_path)
    first = import_json(runner, path, "--me", "Sam Carter", "--date-order", "dmy")

    document = import_json(runner, path, "--me", "Sam Carter", "--date-order", "mdy")

    assert document["replaced_import"] == first["import_id"]
    assert document["replaced"] == [
        {"import_id": first["import_id"], "date_order": "dmy", "me": "Sam Carter"}
    ]
    assert document["same_file_as_import"] is None
    assert document["messages"] == 38


def test_whatsapp_date_order_from_file(
    runner: CliRunner, cli_env: Settings, tmp_path: Path
) -> None:
    output = import_text(runner, sample(tmp_path))

    assert "Dates read in mdy order (from the file)." in output


def test_whatsapp_unknown_me_is_usage_error(
    runner: CliRunner, cli_env: Settings, tmp_path: Path
) -> None:
    result = runner.invoke(cli, ["import", "whatsapp", str(sample(tmp_path)),
                                 "--user", EMAIL, "--me", "Nobody"])

    assert result.exit_code == 2
    assert "No participant of" in result.stderr
    assert "'Nobody'" in result.stderr
    listed = "'+14155550132', 'Ana Souza', 'Sam Carter'"
    assert f"Set --me to one of: {listed}." in result.stderr
    assert Message.select().count() == 0


def test_whatsapp_singular_counts(
    runner: CliRunner, cli_env: Settings, tmp_path: Path
) -> None:
    # Given a chat of one system event and one message with a file
    path = tmp_path / "tiny.txt"
    path.write_text(
        "11/23/26, 9:12 AM - Ana Souza added you\n"
        "11/23/26, 9:15 AM - Sam Carter: PTT-20261123-WA0004.opus (file attached)\n"
        "11/23/26, 9:16 AM - Ana Souza: Thanks\n",
        encoding="utf-8",
    )
    import_text(runner, path)
    path.write_text(
        "11/23/26, 9:15 AM - Sam Carter: PTT-20261123-WA0004.opus (file attached)\n"
        "11/23/26, 9:17 AM - Ana Souza: See you\n"
        "11/23/26, 9:18 AM - Ana Souza removed +1 415-555-0132\n",
        encoding="utf-8",
    )

    # When a later export overlapping it by one message is imported
    output = import_text(runner, path)

    # Then the counts of one read in the singular
    assert "Imported 1 message, 1 system event and 0 media files" in output
    assert "Skipped 1 message already stored." in output


def test_print_summary_singular_forms(capsys: pytest.CaptureFixture[str]) -> None:
    document = {
        "import_id": 3, "status": "partial", "messages": 1, "system_messages": 1,
        "media": 1, "duplicates_skipped": 1, "participants": ["Ana", "Sam"],
        "first_message_at": "2026-11-23T09:12:00+00:00",
        "last_message_at": "2026-11-23T09:12:00+00:00", "date_order": "dmy",
        "date_order_source": "locale", "locale": "", "unparsed_lines": 1,
        "unparsed_samples": [], "me": "Sam", "same_file_as_import": None,
        "replaced": [],
    }

    print_summary(document, "chat.txt")

    output = capsys.readouterr().out
    assert "Imported 1 message, 1 system event and 1 media file from chat.txt" in output
    assert "Skipped 1 message already stored." in output
    assert "1 line did not parse" in output
    assert "(the default with no locale set; pass --date-order if it is wrong)" \
        in output
