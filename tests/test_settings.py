from __future__ import annotations

from pathlib import Path

import pytest

from wallie.errors import ConfigurationError
from wallie.settings import VARIABLES, load_settings, mask_url

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_are_the_embedded_default(tmp_path: Path) -> None:
    settings = load_settings({"WALLIE_HOME": str(tmp_path)})

    assert settings.database_url == f"sqlite:///{tmp_path}/wallie.db"
    assert settings.redis_url is None
    assert settings.embedded
    assert settings.outbox_dir == tmp_path / "outbox"


def test_home_defaults_to_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    settings = load_settings({})

    assert settings.home == tmp_path.resolve()


@pytest.mark.parametrize(
    "url",
    [
        "postgres://app:pw@db.example.com:5432/wallie",
        "postgresql://app:pw@db.example.com:5432/wallie",
        "sqlite:////var/lib/wallie/wallie.db",
    ],
)
def test_database_urls_of_hosting_platforms_are_accepted(url: str) -> None:
    assert load_settings({"DATABASE_URL": url}).database_url == url


def test_invalid_database_url_names_variable_and_masks_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"DATABASE_URL": "mysql://app:hunter2@db/wallie"})

    message = str(caught.value)
    assert caught.value.variable == "DATABASE_URL"
    assert "hunter2" not in message
    assert "mysql://app:***@db/wallie" in message
    assert "postgres://USER:PASSWORD@HOST:PORT/NAME" in message


def test_postgres_url_without_database_name_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="database name"):
        load_settings({"DATABASE_URL": "postgres://app:pw@db.example.com:5432"})


def test_invalid_redis_url_is_rejected() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"REDIS_URL": "http://:secret@cache:6379"})

    assert caught.value.variable == "REDIS_URL"
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DRAMATIQ_PROCESSES", "0", "a whole number of 1 or more"),
        ("DRAMATIQ_THREADS", "many", "a whole number of 1 or more"),
        ("WALLIE_DEFAULT_TIME_ZONE", "Mars/Olympus", "IANA time zone"),
        ("WALLIE_LOG_LEVEL", "LOUD", "one of DEBUG"),
    ],
)
def test_invalid_values_name_the_expected_form(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({name: value})

    assert caught.value.variable == name
    assert expected in str(caught.value)


def test_secret_values_are_never_shown() -> None:
    assert mask_url("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"


def test_readme_lists_every_variable() -> None:
    text = README.read_text(encoding="utf-8")

    missing = [variable.name for variable in VARIABLES if f"`{variable.name}`" not in text]

    assert missing == []


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SMTP_URL", "http://user:pw@mail.example.com", "smtp://USER:PASSWORD@HOST:PORT"),
        ("SMTP_URL", "smtp://user:pw@mail.example.com:notaport", "PORT a number from 1 to 65535"),
        ("SMTP_URL", "smtp://user:pw@mail.example.com:99999", "PORT a number from 1 to 65535"),
        ("WALLIE_TOKEN_KEYS", "notakey", "key 1 is not 32 url-safe base64 bytes"),
        ("WALLIE_TOKEN_KEYS", " , ", "at least one Fernet key"),
    ],
)
def test_mail_settings_rejected_at_start(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({variable: value})

    assert caught.value.variable == variable
    assert expected in str(caught.value)
    assert "pw@" not in str(caught.value)
    assert "notakey" not in str(caught.value)
