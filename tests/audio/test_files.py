"""Tests of file checks: each bad file gets its own error, on both engines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from wallie.audio import (
    AudioTooLarge,
    AudioTooLong,
    CorruptAudioFile,
    EmptyAudioFile,
    NotAudioFile,
    OpenAITranscriber,
    PocketSphinxTranscriber,
    Transcriber,
    TranscriptionError,
    TranscriptStatus,
    UnsupportedAudioFormat,
    is_permanent,
    is_transient,
)
from wallie.audio.decode import AudioInfo, decode_pcm16, probe

from .conftest import silence, tone, write_opus
from .fake_openai import running_server

MakeTranscriber = Callable[..., Transcriber]


@pytest.fixture(params=["offline", "openai"])
def make(request: pytest.FixtureRequest) -> Iterator[MakeTranscriber]:
    """Build either engine with the given limits; the server fails the test if hit."""
    if request.param == "offline":
        yield lambda **limits: PocketSphinxTranscriber(**limits)
        return

    with running_server() as server:
        yield lambda **limits: OpenAITranscriber(
            api_key="sk-test", base_url=server.base_url, **limits
        )
        assert server.uploads == [], "A rejected file reached the provider."


def check_permanent(error: TranscriptionError, path: Path) -> None:
    assert is_permanent(error)
    assert not is_transient(error)
    assert str(path) in str(error)


def test_empty_file(make: MakeTranscriber, tmp_path: Path) -> None:
    path = tmp_path / "empty.opus"
    path.write_bytes(b"")

    with pytest.raises(EmptyAudioFile) as caught:
        make().transcribe(path)

    check_permanent(caught.value, path)
    assert "0 bytes" in str(caught.value)


def test_too_large_rejected_before_decoding(
    make: MakeTranscriber, tmp_path: Path
) -> None:
    # Not audio either: the size check comes first, so no decoder reads it.
    path = tmp_path / "big.opus"
    path.write_bytes(b"%PDF-1.7\n" + b"0" * 5000)

    with pytest.raises(AudioTooLarge) as caught:
        make(max_size_bytes=1000).transcribe(path)

    check_permanent(caught.value, path)
    assert caught.value.size_bytes == 5009
    assert caught.value.max_size_bytes == 1000


def test_too_long(make: MakeTranscriber, tmp_path: Path) -> None:
    path = write_opus(tmp_path / "long.opus", tone(5.0))

    with pytest.raises(AudioTooLong) as caught:
        make(max_duration_s=2.0).transcribe(path)

    check_permanent(caught.value, path)
    assert caught.value.duration_s == pytest.approx(5.0, abs=0.01)
    assert "limit of 2.0 s" in str(caught.value)


def test_too_long_caught_while_decoding(tmp_path: Path) -> None:
    # A header that under-reports the length must not let the audio through.
    path = write_opus(tmp_path / "long.opus", tone(5.0))
    real = probe(path, max_size_bytes=10**9, max_duration_s=60.0)
    lying = AudioInfo(**{**real.__dict__, "frames": real.sample_rate})

    with pytest.raises(AudioTooLong):
        for _block in decode_pcm16(lying, max_duration_s=2.0):
            pass


@pytest.mark.parametrize(
    ("content", "detected"),
    [
        (
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
            "a PDF document",
        ),
        (b"Meeting notes: call Ana about the order on Friday.\n" * 4, "a text file"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(100), "a ZIP archive"),
        (bytes(range(1, 256)) * 2, "binary data of an unknown type"),
    ],
)
def test_not_audio(
    make: MakeTranscriber, tmp_path: Path, content: bytes, detected: str
) -> None:
    path = tmp_path / "renamed.opus"
    path.write_bytes(content)

    with pytest.raises(NotAudioFile) as caught:
        make().transcribe(path)

    check_permanent(caught.value, path)
    assert detected in str(caught.value)


def test_unsupported_container(make: MakeTranscriber, tmp_path: Path) -> None:
    path = tmp_path / "note.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + bytes(200))

    with pytest.raises(UnsupportedAudioFormat) as caught:
        make().transcribe(path)

    check_permanent(caught.value, path)
    assert caught.value.container == "MP4/M4A"


def test_truncated_opus_is_corrupt(make: MakeTranscriber, tmp_path: Path) -> None:
    whole = write_opus(tmp_path / "whole.opus", tone(2.0))
    path = tmp_path / "truncated.opus"
    path.write_bytes(whole.read_bytes()[:200])

    with pytest.raises(CorruptAudioFile) as caught:
        make().transcribe(path)

    check_permanent(caught.value, path)
    assert "malformed" in caught.value.reason


def test_ogg_header_with_garbage_is_corrupt(
    make: MakeTranscriber, tmp_path: Path
) -> None:
    path = tmp_path / "garbage.opus"
    path.write_bytes(b"OggS" + np.random.default_rng(5).bytes(4000))

    with pytest.raises(CorruptAudioFile) as caught:
        make().transcribe(path)

    check_permanent(caught.value, path)


def test_wav_without_data_is_corrupt(make: MakeTranscriber, tmp_path: Path) -> None:
    whole = tmp_path / "whole.wav"
    soundfile.write(whole, tone(1.0, rate=16_000), 16_000)
    path = tmp_path / "header.wav"
    path.write_bytes(whole.read_bytes()[:30])

    with pytest.raises(CorruptAudioFile):
        make().transcribe(path)


def test_silent_audio(make: MakeTranscriber, tmp_path: Path) -> None:
    path = write_opus(tmp_path / "silent.opus", silence(4.0))
    result = make().transcribe(path)

    assert result.status is TranscriptStatus.SILENT
    assert result.text == ""
    assert result.duration_s == pytest.approx(4.0, abs=0.01)
    assert "silence threshold" in result.note


def test_missing_file(make: MakeTranscriber, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        make().transcribe(tmp_path / "missing.opus")


def test_stereo_wav_is_mixed_to_mono(tmp_path: Path) -> None:
    left = tone(1.0, frequency=440.0, rate=44_100)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, -left], axis=1), 44_100)
    info = probe(path, max_size_bytes=10**9, max_duration_s=60.0)
    samples = np.concatenate(list(decode_pcm16(info, max_duration_s=60.0)))

    assert info.channels == 2
    assert samples.size == 16_000
    # Opposite channels cancel in the mix.
    assert np.max(np.abs(samples)) <= 1


@pytest.mark.parametrize(
    ("container", "subtype", "rate"),
    [
        ("OGG", "OPUS", 48_000),
        ("OGG", "VORBIS", 44_100),
        ("FLAC", "PCM_16", 22_050),
        ("WAV", "PCM_16", 8_000),
        ("MP3", "MPEG_LAYER_III", 44_100),
    ],
)
def test_decodes_common_formats(
    tmp_path: Path, container: str, subtype: str, rate: int
) -> None:
    path = tmp_path / f"tone.{container.lower()}"
    soundfile.write(path, tone(2.0, rate=rate), rate, format=container, subtype=subtype)
    info = probe(path, max_size_bytes=10**9, max_duration_s=60.0)
    samples = np.concatenate(list(decode_pcm16(info, max_duration_s=60.0)))

    assert info.container == container
    # Lossy codecs add priming samples, so allow a few tens of milliseconds.
    assert samples.size / 16_000 == pytest.approx(2.0, abs=0.06)
    rms = np.sqrt(np.mean((samples[1600:-1600] / 32768.0) ** 2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
