"""Tests of the OpenAI transcriber against a loopback server, with the real client."""

from __future__ import annotations

import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from wallie.audio import (
    InvalidApiKey,
    OpenAITranscriber,
    ProviderUnavailable,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    TranscriptStatus,
    is_permanent,
    is_transient,
)
from wallie.audio.openai_errors import retry_after_ms

from .conftest import silence, tone, write_opus
from .fake_openai import FakeTranscriptionServer, Reply, running_server

API_KEY = "sk-test-not-a-real-key"


@pytest.fixture
def server() -> Iterator[FakeTranscriptionServer]:
    with running_server() as fake:
        yield fake


@pytest.fixture
def voice_note(tmp_path: Path) -> Path:
    """Three seconds of tone: audible, so it is uploaded."""
    return write_opus(tmp_path / "note.opus", np.concatenate([tone(3.0), silence(0.2)]))


def transcriber(server: FakeTranscriptionServer, **options: Any) -> OpenAITranscriber:
    return OpenAITranscriber(api_key=API_KEY, base_url=server.base_url, **options)


def test_openai_sends_model_and_file(
    server: FakeTranscriptionServer, voice_note: Path
) -> None:
    server.script.append(Reply(body={"text": " I will confirm the order on Friday. "}))
    result = transcriber(server, model="whisper-1").transcribe(
        voice_note, language="en-GB"
    )

    assert len(server.uploads) == 1
    upload = server.uploads[0]
    assert upload.path == "/v1/audio/transcriptions"
    assert upload.authorization == f"Bearer {API_KEY}"
    assert upload.fields["model"] == "whisper-1"
    assert upload.fields["language"] == "en"
    assert upload.fields["response_format"] == "json"
    assert upload.filename == "audio.ogg"
    assert upload.file == voice_note.read_bytes()
    assert result.text == "I will confirm the order on Friday."
    assert result.status is TranscriptStatus.TRANSCRIBED
    assert result.engine == "openai"
    assert result.model == "whisper-1"
    assert result.language == "en"
    assert result.duration_s == pytest.approx(3.2, abs=0.01)
    assert result.segments == 1


def test_openai_default_model_and_no_language(
    server: FakeTranscriptionServer, voice_note: Path
) -> None:
    result = transcriber(server).transcribe(voice_note)

    assert server.uploads[0].fields["model"] == "gpt-transcribe"
    assert "language" not in server.uploads[0].fields
    assert result.language is None


def test_openai_usage_from_duration(
    server: FakeTranscriptionServer, voice_note: Path
) -> None:
    result = transcriber(server, price_per_minute_usd=Decimal("0.006")).transcribe(
        voice_note
    )

    assert result.usage.requests == 1
    assert result.usage.seconds_billed == pytest.approx(3.2, abs=0.01)
    # 3.2 s at 0.006 USD per minute.
    assert result.usage.cost_usd == Decimal("0.000320")


def test_openai_usage_reported_by_provider(
    server: FakeTranscriptionServer, voice_note: Path
) -> None:
    server.script.append(
        Reply(body={"text": "Hello.", "usage": {"type": "duration", "seconds": 7}})
    )
    result = transcriber(server).transcribe(voice_note)

    assert result.usage.seconds_billed == 7.0
    # 7 s at the default 0.0045 USD per minute.
    assert result.usage.cost_usd == Decimal("0.000525")


def test_openai_detected_language(
    server: FakeTranscriptionServer, voice_note: Path
) -> None:
    server.script.append(Reply(body={"text": "Hola.", "languages": [{"code": "es"}]}))

    assert transcriber(server).transcribe(voice_note).language == "es"


@pytest.mark.parametrize(
    ("headers", "expected_ms", "hinted"),
    [
        ({"retry-after-ms": "1500"}, 1500, True),
        ({"retry-after": "2"}, 2000, True),
        ({}, 10_000, False),
    ],
)
def test_openai_rate_limited(
    server: FakeTranscriptionServer,
    voice_note: Path,
    headers: dict[str, str],
    expected_ms: int,
    hinted: bool,
) -> None:
    body = {"error": {"message": "Rate limit reached.", "code": "rate_limit_exceeded"}}
    server.script.append(Reply(429, body, headers))

    with pytest.raises(RateLimited) as caught:
        transcriber(server).transcribe(voice_note)

    assert caught.value.retry_after_ms == expected_ms
    assert caught.value.hinted is hinted
    assert is_transient(caught.value)
    assert not is_permanent(caught.value)
    assert str(voice_note) in str(caught.value)
    # max_retries=0: the client itself never retried.
    assert len(server.uploads) == 1


def test_openai_quota_exhausted(
    server: FakeTranscriptionServer, voice_note: Path
) -> None:
    body = {
        "error": {
            "message": "You exceeded your current quota.",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    server.script.append(Reply(429, body))

    with pytest.raises(QuotaExhausted) as caught:
        transcriber(server).transcribe(voice_note)

    assert is_permanent(caught.value)
    assert "quota" in str(caught.value)
    assert len(server.uploads) == 1


def test_openai_invalid_key(server: FakeTranscriptionServer, voice_note: Path) -> None:
    body = {
        "error": {"message": "Incorrect API key provided.", "code": "invalid_api_key"}
    }
    server.script.append(Reply(401, body))

    with pytest.raises(InvalidApiKey) as caught:
        transcriber(server).transcribe(voice_note)

    assert is_permanent(caught.value)
    assert caught.value.status == 401
    assert "OPENAI_API_KEY" in str(caught.value)
    assert API_KEY not in str(caught.value)


def test_openai_server_error(server: FakeTranscriptionServer, voice_note: Path) -> None:
    server.script.append(Reply(500, {"error": {"message": "Internal error."}}))

    with pytest.raises(ProviderUnavailable) as caught:
        transcriber(server).transcribe(voice_note)

    assert is_transient(caught.value)
    assert caught.value.status == 500
    assert len(server.uploads) == 1


def test_openai_bad_request(server: FakeTranscriptionServer, voice_note: Path) -> None:
    body = {"error": {"message": "Invalid file format.", "code": "invalid_value"}}
    server.script.append(Reply(400, body))

    with pytest.raises(RequestRejected) as caught:
        transcriber(server).transcribe(voice_note)

    assert is_permanent(caught.value)
    assert "Invalid file format." in str(caught.value)


def test_openai_timeout(server: FakeTranscriptionServer, voice_note: Path) -> None:
    server.script.append(Reply(body={"text": "late"}, delay_s=5.0))

    with pytest.raises(ProviderUnavailable) as caught:
        transcriber(server, timeout_s=0.5).transcribe(voice_note)

    assert is_transient(caught.value)
    assert caught.value.status is None
    assert "timed out" in str(caught.value)


def test_openai_connection_refused(voice_note: Path) -> None:
    with running_server() as stopped:
        base_url = stopped.base_url
    client = OpenAITranscriber(api_key=API_KEY, base_url=base_url)

    with pytest.raises(ProviderUnavailable) as caught:
        client.transcribe(voice_note)

    assert is_transient(caught.value)


def test_openai_splits_large_audio(
    server: FakeTranscriptionServer, tmp_path: Path
) -> None:
    # Five 1.5 s tones with 0.3 s pauses: 9 s of audio in chunks of at most 2 s.
    parts = []
    for number in range(5):
        parts += [tone(1.5, frequency=300 + 100 * number), silence(0.3)]
    path = write_opus(tmp_path / "long.opus", np.concatenate(parts))
    limit = 64_000 + 1024
    result = transcriber(server, max_upload_bytes=limit).transcribe(path)

    assert len(server.uploads) >= 5
    assert result.usage.requests == len(server.uploads)
    assert result.text == " ".join(
        f"reply {n}" for n in range(1, len(server.uploads) + 1)
    )
    decoded = 0
    for upload in server.uploads:
        assert upload.fields["model"] == "gpt-transcribe"
        assert upload.filename is not None
        assert upload.filename.endswith(".wav")
        assert len(upload.file) <= limit
        samples, rate = soundfile.read(io.BytesIO(upload.file), dtype="int16")
        assert rate == 16_000
        assert samples.ndim == 1
        decoded += samples.size
    assert decoded / 16_000 == pytest.approx(result.duration_s, abs=0.05)
    assert result.usage.seconds_billed == pytest.approx(result.duration_s, abs=0.05)


def test_openai_reencodes_unlisted_container(
    server: FakeTranscriptionServer, tmp_path: Path
) -> None:
    path = tmp_path / "note.aiff"
    soundfile.write(path, tone(1.0, rate=16_000), 16_000, format="AIFF")
    transcriber(server).transcribe(path)

    assert len(server.uploads) == 1
    assert server.uploads[0].filename == "chunk-001.wav"


def test_openai_silent_audio_is_not_sent(
    server: FakeTranscriptionServer, tmp_path: Path
) -> None:
    path = write_opus(tmp_path / "silent.opus", silence(3.0))
    result = transcriber(server).transcribe(path)

    assert server.uploads == []
    assert result.status is TranscriptStatus.SILENT
    assert result.text == ""
    assert result.usage.cost_usd == Decimal("0")


def test_openai_empty_reply_is_silent(
    server: FakeTranscriptionServer, voice_note: Path
) -> None:
    server.script.append(Reply(body={"text": "   "}))
    result = transcriber(server).transcribe(voice_note)

    assert result.status is TranscriptStatus.SILENT
    assert result.usage.requests == 1
    assert result.usage.cost_usd > 0


def test_openai_rejects_tiny_chunk_limit() -> None:
    with pytest.raises(ValueError, match="at least 1 s"):
        OpenAITranscriber(
            api_key=API_KEY, base_url="http://127.0.0.1:9/v1", max_upload_bytes=2000
        )


def test_retry_after_header_forms() -> None:
    assert retry_after_ms({"retry-after-ms": "250.4"}) == 250
    assert retry_after_ms({"retry-after": "1.5"}) == 1500
    assert retry_after_ms({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0
    assert retry_after_ms({"retry-after": "soon"}) is None
    assert retry_after_ms({}) is None
