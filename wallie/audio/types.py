"""Values returned by transcribers, and the protocol that every engine follows."""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol


class TranscriptStatus(StrEnum):
    """Outcome of a transcription that did not raise."""

    #: The engine returned text.
    TRANSCRIBED = "transcribed"
    #: The audio decoded but contains no speech: its level never rose above the
    #: silence threshold, or the engine returned no words.  Not worth a retry.
    SILENT = "silent"
    #: The engine does not handle the requested language, so nothing was
    #: transcribed.  Another engine may handle it.
    LANGUAGE_UNSUPPORTED = "language_unsupported"


@dataclass(frozen=True)
class Usage:
    """Billing figures of one transcription.

    Attributes:
      seconds_billed: Audio seconds that the provider bills, an estimate unless
        the provider reported it; 0 for the offline engine.
      cost_usd: Estimated cost in US dollars; 0 for the offline engine.
      requests: Requests sent to the provider; 0 for the offline engine.
    """

    seconds_billed: float
    cost_usd: Decimal
    requests: int = 0


#: Usage of a transcription that billed nothing.
NO_USAGE = Usage(seconds_billed=0.0, cost_usd=Decimal("0"), requests=0)


@dataclass(frozen=True)
class Transcript:
    """Text of one audio file and how it was obtained.

    Attributes:
      text: The transcript; empty unless the status is ``TRANSCRIBED``.
      language: ISO 639-1 code of the transcript's language, or ``None`` when
        neither the caller nor the engine named one.
      engine: ``"offline"`` or ``"openai"``.
      model: The acoustic model or provider model that produced the text.
      duration_s: Decoded audio duration, in seconds.
      usage: Billing figures.
      status: The outcome.
      segments: Pieces the audio was cut into: decoder segments offline,
        upload requests for a provider.
      note: Why the status is not ``TRANSCRIBED``, in a sentence; empty otherwise.
    """

    text: str
    language: str | None
    engine: str
    model: str
    duration_s: float
    usage: Usage
    status: TranscriptStatus = TranscriptStatus.TRANSCRIBED
    segments: int = 0
    note: str = ""


class Transcriber(Protocol):
    """Speech-to-text engine for one audio file at a time."""

    #: ``"offline"`` or ``"openai"``.
    name: str

    def transcribe(
        self, path: str | os.PathLike[str], *, language: str | None = None
    ) -> Transcript:
        """Transcribe the audio file at ``path``.

        Parameters:
          path: The audio file.
          language: ISO 639-1 code or BCP 47 tag of the spoken language, or
            ``None`` to let the engine decide.

        Returns:
          The transcript, whose status shows whether any text was found.

        Raises:
          wallie.audio.errors.TranscriptionError: The file or the provider
            failed; :func:`wallie.audio.errors.is_permanent` tells whether to
            retry.
        """
        ...


def primary_language(language: str | None) -> str | None:
    """Return the lower-case primary subtag of a language tag.

    Parameters:
      language: A code such as ``"en"``, ``"en-US"`` or ``"pt_BR"``, or ``None``.

    Returns:
      The primary subtag, for example ``"en"``; ``None`` for ``None`` or blank.
    """
    if language is None or not language.strip():
        return None

    return language.strip().replace("_", "-").split("-")[0].lower()
