"""Tests for ``wallie-cli transcribe``, offline and through a fake OpenAI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.audio.conftest import silence, speak, write_opus
from tests.audio.fake_openai import FakeTranscriptionServer, Reply, running_server
from wallie.settings import reset_settings

API_KEY = "sk-test-not-a-real-key"


@pytest.fixture(scope="module")
def promise_opus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ "I will confirm the order on Friday" spoken by espeak-ng, as Ogg/Opus."""
    folder = tmp_path_factory.mktemp("speech")
    spoken = speak("I will confirm the order on Friday", folder)
    samples = np.concatenate([silence(0.5), spoken, silence(0.5)])
    return write_opus(folder / "promise.opus", samples)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty WALLIE_HOME with no OpenAI settings."""
    monkeypatch.setenv("WALLIE_HOME", str(tmp_path))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "WALLIE_TRANSCRIPTION_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    yield tmp_path
    reset_settings()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTranscriptionServer]:
    """A fake transcription API that the environment points OpenAI at."""
    with running_server() as fake:
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        yield fake


def test_transcribe_prints_text_and_details(
    runner: CliRunner, home: Path, promise_opus: Path
) -> None:
    result = runner.invoke(cli, ["transcribe", str(promise_opus)])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "confirm the order on friday" in lines[0]
    assert "status:   transcribed" in lines
    assert "engine:   offline (pocketsphinx-en-us)" in lines
    assert "language: en" in lines
    assert any(line.startswith("duration: ") for line in lines)


def test_transcribe_json_has_stable_keys(
    runner: CliRunner, home: Path, promise_opus: Path
) -> None:
    result = runner.invoke(cli, ["transcribe", str(promise_opus), "--json"])

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {
        "path",
        "status",
        "text",
        "engine",
        "model",
        "language",
        "duration_s",
        "segments",
        "note",
        "requests",
        "cost_usd",
    }
    assert document["status"] == "transcribed"
    assert document["engine"] == "offline"
    assert document["language"] == "en"
    assert 2.0 < document["duration_s"] < 6.0
    assert "friday" in document["text"]
    assert document["cost_usd"] == "0"


def test_transcribe_other_language_offline_is_unsupported(
    runner: CliRunner, home: Path, promise_opus: Path
) -> None:
    result = runner.invoke(
        cli, ["transcribe", str(promise_opus), "--language", "es", "--json"]
    )

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["status"] == "language_unsupported"
    assert document["text"] == ""
    assert document["language"] == "es"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "is empty (0 bytes)"),
        (b"OggS" + b"\0" * 60, "does not decode"),
        (b"just some notes\n", "looks like a text file"),
    ],
    ids=["empty", "corrupt", "not audio"],
)
def test_transcribe_bad_file_exits_1_with_reason(
    runner: CliRunner, home: Path, content: bytes, reason: str
) -> None:
    bad = home / "note.opus"
    bad.write_bytes(content)

    result = runner.invoke(cli, ["transcribe", str(bad)])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert reason in result.stderr


def test_transcribe_bad_file_json_names_failure(runner: CliRunner, home: Path) -> None:
    bad = home / "note.opus"
    bad.write_bytes(b"%PDF-1.4 a quote")

    result = runner.invoke(cli, ["transcribe", str(bad), "--json"])

    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["status"] == "failed"
    assert "PDF document" in document["error"]


def test_transcribe_missing_file_is_usage_error(runner: CliRunner, home: Path) -> None:
    result = runner.invoke(cli, ["transcribe", str(home / "absent.opus")])

    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_transcribe_openai_without_key_is_config_error(
    runner: CliRunner, home: Path, promise_opus: Path
) -> None:
    result = runner.invoke(cli, ["transcribe", str(promise_opus), "--engine", "openai"])

    assert result.exit_code == 3
    assert "OPENAI_API_KEY" in result.stderr


def test_transcribe_openai_uses_provider_text(
    runner: CliRunner, home: Path, promise_opus: Path, server: FakeTranscriptionServer
) -> None:
    server.script.append(Reply(body={"text": "I will confirm the order on Friday."}))

    result = runner.invoke(
        cli, ["transcribe", str(promise_opus), "--engine", "openai", "--json"]
    )

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["engine"] == "openai"
    assert document["text"] == "I will confirm the order on Friday."
    assert document["requests"] == 1
    assert document["cost_usd"] != "0"
    assert server.uploads[0].fields["model"] == "gpt-transcribe"


def test_transcribe_openai_rate_limit_exits_1(
    runner: CliRunner, home: Path, promise_opus: Path, server: FakeTranscriptionServer
) -> None:
    body = {"error": {"message": "Rate limit reached.", "code": "rate_limit_exceeded"}}
    server.script.append(Reply(429, body, {"retry-after": "7"}))

    result = runner.invoke(cli, ["transcribe", str(promise_opus)])

    assert result.exit_code == 1
    assert "retry after 7000 ms" in result.stderr
