"""Tests of the offline PocketSphinx transcriber on speech made with espeak-ng."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from wallie.audio import PocketSphinxTranscriber, TranscriptStatus

MakeSpeech = Callable[..., Path]

# Sentences with words that the en-us model recognised on every run, in the
# espeak-ng voice of the fixtures.
SENTENCES = [
    ("I will confirm the order on Friday", ["order", "friday"]),
    ("The price is ten thousand dollars", ["price", "thousand", "dollars"]),
    ("Please call me back next week about the contract", ["call", "week", "contract"]),
]


@pytest.fixture(scope="module")
def transcriber() -> PocketSphinxTranscriber:
    """One transcriber for the module, so the model loads once."""
    return PocketSphinxTranscriber()


@pytest.mark.parametrize(("sentence", "words"), SENTENCES)
def test_offline_recognises_sentence(
    transcriber: PocketSphinxTranscriber,
    make_speech: MakeSpeech,
    sentence: str,
    words: list[str],
) -> None:
    result = transcriber.transcribe(make_speech([sentence]), language="en")
    found = result.text.split()

    assert result.status is TranscriptStatus.TRANSCRIBED
    for word in words:
        assert word in found, f"{word!r} missing from {result.text!r}"


def test_offline_transcript_fields(
    transcriber: PocketSphinxTranscriber, make_speech: MakeSpeech
) -> None:
    result = transcriber.transcribe(make_speech([SENTENCES[0][0]]), language=None)

    assert result.engine == "offline"
    assert result.model == "pocketsphinx-en-us"
    assert result.language == "en"
    assert result.segments == 1
    assert 2.0 < result.duration_s < 6.0
    assert result.usage.seconds_billed == 0.0
    assert result.usage.cost_usd == Decimal("0")
    assert result.usage.requests == 0
    assert result.note == ""


@pytest.mark.slow
def test_offline_long_audio_in_segments(make_speech: MakeSpeech) -> None:
    # Four sentences with 1 s pauses (about 15 s) through 5 s segments: each
    # cut must fall in a pause for every sentence's key words to survive.
    sentences = [sentence for sentence, _words in SENTENCES] + [SENTENCES[0][0]]
    path = make_speech(sentences, pause_s=1.0)
    result = PocketSphinxTranscriber(segment_s=5.0).transcribe(path, language="en-US")
    found = result.text.split()

    assert result.segments >= 3
    for _sentence, words in SENTENCES:
        for word in words:
            assert word in found, f"{word!r} missing from {result.text!r}"
    assert found.index("friday") < found.index("dollars") < found.index("contract")


@pytest.mark.parametrize("language", ["es", "pt-BR", "de_DE"])
def test_offline_other_language_unsupported(
    transcriber: PocketSphinxTranscriber, make_speech: MakeSpeech, language: str
) -> None:
    result = transcriber.transcribe(make_speech(["Hola"]), language=language)

    assert result.status is TranscriptStatus.LANGUAGE_UNSUPPORTED
    assert result.text == ""
    assert result.language == language[:2].lower()
    assert "English only" in result.note
    assert result.duration_s > 0


def test_offline_rejects_short_segments() -> None:
    with pytest.raises(ValueError, match="segment_s"):
        PocketSphinxTranscriber(segment_s=0.5)
