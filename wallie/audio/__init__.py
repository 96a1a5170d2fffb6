"""Speech-to-text for voice notes and recorded calls.

:func:`make_transcriber` builds an engine: PocketSphinx on the local CPU for
English (``"offline"``) or the OpenAI transcription API (``"openai"``).  Both
follow the :class:`Transcriber` protocol and return a :class:`Transcript`.
File problems and provider failures raise the errors in
:mod:`wallie.audio.errors`, and :func:`is_permanent` returns whether the
caller should stop instead of retrying.
"""

from __future__ import annotations

from wallie.audio.errors import (
    AudioFileError,
    AudioTooLarge,
    AudioTooLong,
    CorruptAudioFile,
    EmptyAudioFile,
    InvalidApiKey,
    NotAudioFile,
    ProviderError,
    ProviderUnavailable,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    TranscriptionError,
    UnsupportedAudioFormat,
    is_permanent,
    is_transient,
)
from wallie.audio.factory import ENGINES, make_transcriber
from wallie.audio.offline import PocketSphinxTranscriber
from wallie.audio.openai_engine import OpenAITranscriber
from wallie.audio.types import Transcriber, Transcript, TranscriptStatus, Usage

__all__ = [
    "ENGINES",
    "AudioFileError",
    "AudioTooLarge",
    "AudioTooLong",
    "CorruptAudioFile",
    "EmptyAudioFile",
    "InvalidApiKey",
    "NotAudioFile",
    "OpenAITranscriber",
    "PocketSphinxTranscriber",
    "ProviderError",
    "ProviderUnavailable",
    "QuotaExhausted",
    "RateLimited",
    "RequestRejected",
    "Transcriber",
    "Transcript",
    "TranscriptStatus",
    "TranscriptionError",
    "UnsupportedAudioFormat",
    "Usage",
    "is_permanent",
    "is_transient",
    "make_transcriber",
]
