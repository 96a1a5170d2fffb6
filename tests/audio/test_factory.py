"""Tests of engine selection and error classification."""

from __future__ import annotations

import pytest

from wallie.audio import (
    AudioTooLarge,
    AudioTooLong,
    CorruptAudioFile,
    EmptyAudioFile,
    InvalidApiKey,
    NotAudioFile,
    OpenAITranscriber,
    PocketSphinxTranscriber,
    ProviderUnavailable,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    UnsupportedAudioFormat,
    is_permanent,
    is_transient,
    make_transcriber,
)
from wallie.errors import WallieError

LOCAL_URL = "http://127.0.0.1:9/v1"


def test_factory_defaults_to_offline_without_key() -> None:
    assert isinstance(make_transcriber(None, None), PocketSphinxTranscriber)
    assert isinstance(make_transcriber(None, ""), PocketSphinxTranscriber)


def test_factory_defaults_to_openai_with_key() -> None:
    transcriber = make_transcriber(None, "sk-test", LOCAL_URL)

    assert isinstance(transcriber, OpenAITranscriber)
    assert transcriber.model == "gpt-transcribe"


def test_factory_passes_model_and_limits() -> None:
    transcriber = make_transcriber(
        "OpenAI",
        "sk-test",
        LOCAL_URL,
        "whisper-1",
        max_duration_s=60.0,
        max_size_bytes=1000,
    )

    assert isinstance(transcriber, OpenAITranscriber)
    assert transcriber.model == "whisper-1"
    assert transcriber.max_duration_s == 60.0
    assert transcriber.max_size_bytes == 1000


def test_factory_offline_even_with_key() -> None:
    transcriber = make_transcriber("offline", "sk-test", max_duration_s=30.0)

    assert isinstance(transcriber, PocketSphinxTranscriber)
    assert transcriber.max_duration_s == 30.0


def test_factory_unknown_engine() -> None:
    with pytest.raises(ValueError, match="'offline', 'openai'") as caught:
        make_transcriber("whisper", None)

    assert "'whisper'" in str(caught.value)


def test_factory_openai_needs_key() -> None:
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        make_transcriber("openai", None)


PERMANENT = [
    EmptyAudioFile("a.opus"),
    AudioTooLarge("a.opus", 10, 5),
    AudioTooLong("a.opus", 10.0, 5.0),
    NotAudioFile("a.opus", "a PDF document"),
    UnsupportedAudioFormat("a.opus", "AMR"),
    CorruptAudioFile("a.opus", "bad header"),
    QuotaExhausted("a.opus", "No quota.", 429),
    InvalidApiKey("a.opus", "Bad key.", 401),
    RequestRejected("a.opus", "Bad request.", 400),
]
TRANSIENT = [
    RateLimited("a.opus", retry_after_ms=1000, hinted=True),
    ProviderUnavailable("a.opus", "Down.", 503),
]


@pytest.mark.parametrize("error", PERMANENT, ids=lambda error: type(error).__name__)
def test_permanent_errors(error: Exception) -> None:
    assert isinstance(error, WallieError)
    assert is_permanent(error)
    assert not is_transient(error)


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda error: type(error).__name__)
def test_transient_errors(error: Exception) -> None:
    assert isinstance(error, WallieError)
    assert is_transient(error)
    assert not is_permanent(error)


def test_foreign_errors_are_neither() -> None:
    error = OSError("disk failed")

    assert not is_permanent(error)
    assert not is_transient(error)
