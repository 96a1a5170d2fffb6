"""Engine choice from settings, the transcription settings, and the transcriber pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from wallie.audio.engines import TranscriberPool, resolve_engine
from wallie.audio.limits import DEFAULT_MAX_DURATION_S, DEFAULT_MAX_SIZE_BYTES
from wallie.audio.offline import PocketSphinxTranscriber
from wallie.audio.openai_engine import OpenAITranscriber
from wallie.errors import ConfigurationError, InvalidArguments
from wallie.settings import Settings, load_settings


def settings_with(tmp_path: Path, **environ: str) -> Settings:
    return load_settings({"WALLIE_HOME": str(tmp_path), **environ})


def test_transcription_defaults_match_library_limits(tmp_path: Path) -> None:
    settings = settings_with(tmp_path)

    assert settings.transcription_engine == "auto"
    assert settings.transcription_max_seconds == DEFAULT_MAX_DURATION_S
    assert settings.transcription_max_bytes == DEFAULT_MAX_SIZE_BYTES
    assert settings.openai_transcription_model is None


def test_invalid_transcription_engine_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings_with(tmp_path, WALLIE_TRANSCRIPTION_ENGINE="cloud")

    assert caught.value.variable == "WALLIE_TRANSCRIPTION_ENGINE"
    assert "one of auto, offline, openai" in str(caught.value)


@pytest.mark.parametrize(
    ("requested", "environ", "expected"),
    [
        ("auto", {}, "offline"),
        ("auto", {"OPENAI_API_KEY": "sk-test"}, "openai"),
        (
            "auto",
            {"OPENAI_API_KEY": "sk-test", "WALLIE_TRANSCRIPTION_ENGINE": "offline"},
            "offline",
        ),
        ("offline", {"OPENAI_API_KEY": "sk-test"}, "offline"),
        (
            "openai",
            {"OPENAI_API_KEY": "sk-test", "WALLIE_TRANSCRIPTION_ENGINE": "offline"},
            "openai",
        ),
    ],
)
def test_resolve_engine(
    tmp_path: Path, requested: str, environ: dict[str, str], expected: str
) -> None:
    assert resolve_engine(requested, settings_with(tmp_path, **environ)) == expected


@pytest.mark.parametrize(
    ("requested", "environ"),
    [("openai", {}), ("auto", {"WALLIE_TRANSCRIPTION_ENGINE": "openai"})],
)
def test_openai_without_key_is_a_configuration_error(
    tmp_path: Path, requested: str, environ: dict[str, str]
) -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        resolve_engine(requested, settings_with(tmp_path, **environ))


def test_unknown_engine_is_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(InvalidArguments, match="got 'whisper'"):
        resolve_engine("whisper", settings_with(tmp_path))


def test_pool_lends_configured_transcribers_and_reuses_them(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path,
        OPENAI_API_KEY="sk-test",
        OPENAI_TRANSCRIPTION_MODEL="whisper-1",
        WALLIE_TRANSCRIPTION_MAX_SECONDS="90",
        WALLIE_TRANSCRIPTION_MAX_BYTES="1000000",
    )
    pool = TranscriberPool()

    with (
        pool.borrow("offline", settings) as first,
        pool.borrow("offline", settings) as second,
    ):
        assert second is not first
    with pool.borrow("offline", settings) as again:
        assert again in (first, second)
    with pool.borrow("openai", settings) as remote:
        pass

    assert isinstance(first, PocketSphinxTranscriber)
    assert first.max_duration_s == 90.0
    assert first.max_size_bytes == 1_000_000
    assert isinstance(remote, OpenAITranscriber)
    assert remote.model == "whisper-1"
