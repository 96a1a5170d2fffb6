"""Tests for ``wallie-cli mailbox list`` and ``mailbox connect``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from cli.main import cli
from wallie.db.models import Mailbox, User
from wallie.mail.tokens import TokenCipher
from wallie.settings import Settings, reset_settings

GOOGLE_TOKEN = {
    "token": "ya29.access",
    "refresh_token": "1//refresh",
    "token_uri": "https://oauth2.googleapis.com/token",
    "client_id": "client-1.apps.googleusercontent.com",
    "client_secret": "secret-1",
    "scopes": ["https://www.googleapis.com/auth/gmail.readonly"],
    "expiry": "2026-12-04T15:00:00",
}
MICROSOFT_TOKEN = {
    "access_token": "eyJ0.access",
    "refresh_token": "0.refresh",
    "client_id": "app-1",
    "expires_on": 1796400000,
    "scope": "Mail.Read offline_access",
}


@pytest.fixture
def key(cli_env: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    value = Fernet.generate_key().decode()
    monkeypatch.setenv("WALLIE_TOKEN_KEYS", value)
    reset_settings()
    return value


def write(tmp_path: Path, document: object, name: str = "token.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_list_empty_prints_sentence(runner: CliRunner, cli_env: Settings) -> None:
    result = runner.invoke(cli, ["mailbox", "list"])

    assert result.exit_code == 0, result.output
    assert result.output == "No mailboxes are connected.\n"


def test_connect_gmail_creates_user_and_encrypts(
    runner: CliRunner, key: str, tmp_path: Path
) -> None:
    path = write(tmp_path, GOOGLE_TOKEN)

    result = runner.invoke(
        cli,
        [
            "mailbox",
            "connect",
            "--user",
            "Sam@Example.com",
            "--provider",
            "gmail",
            "--token-file",
            str(path),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "Created user sam@example.com." in result.output
    assert "Connected gmail mailbox sam@example.com" in result.output
    mailbox = Mailbox.get()
    assert mailbox.user.email == "sam@example.com"
    assert mailbox.address == "sam@example.com"
    assert mailbox.state == "active"
    assert "ya29" not in mailbox.token
    token = TokenCipher(key).decrypt(mailbox.token)
    assert token.access_token == "ya29.access"
    assert token.refresh_token == "1//refresh"
    assert token.client_id == "client-1.apps.googleusercontent.com"
    assert token.expires_at is not None
    assert token.expires_at.isoformat() == "2026-12-04T15:00:00+00:00"


def test_connect_again_reconnects(runner: CliRunner, key: str, tmp_path: Path) -> None:
    path = write(tmp_path, MICROSOFT_TOKEN)
    arguments = [
        "mailbox",
        "connect",
        "--user",
        "sam@example.com",
        "--provider",
        "outlook",
        "--token-file",
        str(path),
        "--address",
        "sam@contoso.example",
    ]
    runner.invoke(cli, arguments)
    Mailbox.update(state="needs_reconnect", last_error="TokenRevoked: gone").execute()

    result = runner.invoke(cli, arguments)

    assert result.exit_code == 0, result.output
    assert "Created user" not in result.output
    assert "Reconnected outlook mailbox sam@contoso.example" in result.output
    mailbox = Mailbox.get()
    assert Mailbox.select().count() == 1
    assert mailbox.state == "active"
    assert mailbox.last_error == ""
    assert TokenCipher(key).decrypt(mailbox.token).scopes == (
        "Mail.Read",
        "offline_access",
    )


def test_list_shows_state_and_error(
    runner: CliRunner, key: str, tmp_path: Path
) -> None:
    path = write(tmp_path, GOOGLE_TOKEN)
    for email in ("ana@example.com", "ben@example.com"):
        runner.invoke(
            cli,
            [
                "mailbox",
                "connect",
                "--user",
                email,
                "--provider",
                "gmail",
                "--token-file",
                str(path),
            ],
        )
    Mailbox.update(
        state="needs_reconnect", last_error="TokenRevoked: invalid_grant"
    ).where(Mailbox.address == "ben@example.com").execute()

    text = runner.invoke(cli, ["mailbox", "list"])
    only_ben = runner.invoke(
        cli, ["mailbox", "list", "--user", "ben@example.com", "--json"]
    )

    assert text.exit_code == 0, text.output
    assert (
        "ana@example.com  gmail    ana@example.com  active  last sync never"
        in text.output
    )
    assert "needs_reconnect" in text.output
    assert "  last error: TokenRevoked: invalid_grant" in text.output
    document = json.loads(only_ben.output)
    assert [m["address"] for m in document["mailboxes"]] == ["ben@example.com"]
    assert document["mailboxes"][0]["state"] == "needs_reconnect"
    assert document["mailboxes"][0]["last_sync_at"] is None
    assert "token" not in document["mailboxes"][0]


def test_missing_token_keys_explain_generation(
    runner: CliRunner,
    cli_env: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WALLIE_TOKEN_KEYS", raising=False)
    path = write(tmp_path, GOOGLE_TOKEN)

    result = runner.invoke(
        cli,
        [
            "mailbox",
            "connect",
            "--user",
            "sam@example.com",
            "--provider",
            "gmail",
            "--token-file",
            str(path),
        ],
    )

    assert result.exit_code == 1
    assert "WALLIE_TOKEN_KEYS is not set" in result.output
    assert "Fernet.generate_key()" in result.output
    assert User.select().count() == 0


@pytest.mark.parametrize(
    ("provider", "document", "missing"),
    [
        (
            "gmail",
            {"token": "a", "client_id": "c"},
            "missing refresh_token, client_secret.",
        ),
        ("outlook", {"refresh_token": "r", "client_id": "c"}, "missing access_token."),
        ("outlook", {"access_token": "a"}, "missing refresh_token, client_id."),
    ],
)
def test_token_file_missing_keys_named(
    runner: CliRunner,
    key: str,
    tmp_path: Path,
    provider: str,
    document: dict[str, str],
    missing: str,
) -> None:
    path = write(tmp_path, document)

    result = runner.invoke(
        cli,
        [
            "mailbox",
            "connect",
            "--user",
            "sam@example.com",
            "--provider",
            provider,
            "--token-file",
            str(path),
        ],
    )

    assert result.exit_code == 1
    assert f"Token file {path} is {missing}" in result.output
    assert Mailbox.select().count() == 0


def test_token_file_absent_or_invalid(
    runner: CliRunner, key: str, tmp_path: Path
) -> None:
    absent = tmp_path / "absent.json"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    base = [
        "mailbox",
        "connect",
        "--user",
        "sam@example.com",
        "--provider",
        "gmail",
        "--token-file",
    ]

    not_found = runner.invoke(cli, [*base, str(absent)])
    not_json = runner.invoke(cli, [*base, str(broken)])

    assert not_found.exit_code == 1
    assert f"Token file {absent} was not found." in not_found.output
    assert not_json.exit_code == 1
    assert f"Token file {broken} is not valid JSON" in not_json.output


def test_help_lists_mailbox_commands(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["mailbox", "--help"])

    assert result.exit_code == 0
    assert "connect" in result.output
    assert "list" in result.output
