"""Offline speech-to-text with PocketSphinx 5 and its bundled US English model.

The engine handles English only.  A request for another language returns a
transcript with status ``LANGUAGE_UNSUPPORTED`` and no text, because English
words guessed from, say, Spanish speech would read as a confident transcript
of something that nobody spoke.  With ``language=None`` the engine assumes
English, so callers that know the language of a conversation should pass it.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pocketsphinx

from wallie.audio.decode import (
    TARGET_RATE,
    AudioInfo,
    Int16Array,
    decode_pcm16,
    probe,
)
from wallie.audio.limits import DEFAULT_MAX_DURATION_S, DEFAULT_MAX_SIZE_BYTES
from wallie.audio.segments import has_sound, split_at_pauses
from wallie.audio.types import (
    NO_USAGE,
    Transcript,
    TranscriptStatus,
    primary_language,
)
from wallie.logging import get_logger

logger = get_logger(__name__)

#: Maximum audio handed to the decoder as one utterance, in seconds.  The
#: decoder's memory and its batch cepstral mean normalisation grow with the
#: utterance, and 30 s keeps both small while spanning several sentences.
SEGMENT_S = 30.0

#: How far back from a segment's end to look for a pause to cut at, in seconds.
PAUSE_SEARCH_S = 5.0

#: Digital silence added before and after each segment, in seconds.  On
#: espeak-ng test voices, PocketSphinx often dropped the first word of a clip
#: that starts right at the speech.  Half a second of lead-in fixed that.
PADDING_S = 0.5

#: Name of the PocketSphinx acoustic and language model bundled in its wheel.
MODEL_NAME = "pocketsphinx-en-us"

#: Languages that the bundled model transcribes, as ISO 639-1 codes.
SUPPORTED_LANGUAGES = frozenset({"en"})


class PocketSphinxTranscriber:
    """Transcribe English audio on the local CPU with PocketSphinx.

    Parameters:
      max_duration_s: The maximum accepted audio duration, in seconds.
      max_size_bytes: The maximum accepted file size, in bytes.
      segment_s: The maximum segment decoded as one utterance, in seconds.

    Note:
      The decoder loads its model (about a second) on first use and is then
      reused.  One decoder is not thread-safe, so calls on one instance run one
      at a time; give each worker thread its own instance for parallel work.
    """

    name = "offline"

    def __init__(
        self,
        *,
        max_duration_s: float = DEFAULT_MAX_DURATION_S,
        max_size_bytes: int = DEFAULT_MAX_SIZE_BYTES,
        segment_s: float = SEGMENT_S,
    ) -> None:
        if segment_s < 1.0:
            raise ValueError(f"segment_s must be at least 1 s; got {segment_s}.")

        self.max_duration_s = max_duration_s
        self.max_size_bytes = max_size_bytes
        self.segment_samples = int(segment_s * TARGET_RATE)
        self.search_samples = int(min(PAUSE_SEARCH_S, segment_s / 4) * TARGET_RATE)
        self._decoder: pocketsphinx.Decoder | None = None
        self._lock = threading.Lock()

    def transcribe(
        self, path: str | os.PathLike[str], *, language: str | None = None
    ) -> Transcript:
        """Transcribe an English audio file.

        Parameters:
          path: The audio file.
          language: ISO 639-1 code or BCP 47 tag; ``None`` is taken as English.

        Returns:
          The transcript.  Its status is ``LANGUAGE_UNSUPPORTED`` for a language
          other than English and ``SILENT`` when no segment has speech or the
          decoder found no words.

        Raises:
          wallie.audio.errors.AudioFileError: The file is empty, too large, too
            long, not audio, in an unsupported format or corrupt.
        """
        info = probe(
            path, max_size_bytes=self.max_size_bytes, max_duration_s=self.max_duration_s
        )
        requested = primary_language(language)
        if requested is not None and requested not in SUPPORTED_LANGUAGES:
            logger.info(
                "Skipped %s: the offline engine does not transcribe language %r.",
                info.path,
                requested,
            )
            return self._unsupported(info, requested)

        started = time.perf_counter()
        with self._lock:
            texts, samples, segments, sounded = self._transcribe_segments(info)
        duration_s = samples / TARGET_RATE
        logger.info(
            "Transcribed %s offline: %.1f s of audio in %d segments in %.1f s.",
            info.path,
            duration_s,
            segments,
            time.perf_counter() - started,
        )

        text = " ".join(texts)
        status = TranscriptStatus.TRANSCRIBED
        note = ""
        if not text:
            status = TranscriptStatus.SILENT
            note = _silence_note(sounded)

        return Transcript(
            text=text,
            language="en",
            engine=self.name,
            model=MODEL_NAME,
            duration_s=duration_s,
            usage=NO_USAGE,
            status=status,
            segments=segments,
            note=note,
        )

    def _transcribe_segments(self, info: AudioInfo) -> tuple[list[str], int, int, int]:
        """Decode each segment that has sound.

        Returns:
          The non-empty segment texts, the number of 16 kHz samples, the number
          of segments and the number of segments with sound.
        """
        texts: list[str] = []
        samples = 0
        segments = 0
        sounded = 0
        blocks = decode_pcm16(info, max_duration_s=self.max_duration_s)
        for segment in split_at_pauses(
            blocks, max_samples=self.segment_samples, search_samples=self.search_samples
        ):
            samples += segment.size
            segments += 1
            # Skipping silent segments saves decoder time and avoids the words
            # that the decoder sometimes hallucinates from noise.
            if not has_sound(segment):
                continue

            sounded += 1
            words = self._decode(segment)
            if words:
                texts.append(words)

        return texts, samples, segments, sounded

    def _decode(self, segment: Int16Array) -> str:
        """Return the best hypothesis for one segment, or an empty string."""
        decoder = self._load_decoder()
        padding = np.zeros(int(PADDING_S * TARGET_RATE), dtype=np.int16)
        pcm = np.concatenate([padding, segment, padding])
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        if hypothesis is None:
            return ""

        return str(hypothesis.hypstr).strip()

    def _load_decoder(self) -> pocketsphinx.Decoder:
        """Return the decoder, loading the bundled en-us model on first use."""
        if self._decoder is None:
            # The defaults of Decoder() are the en-us acoustic model, language
            # model and dictionary under pocketsphinx.get_model_path().
            self._decoder = pocketsphinx.Decoder(samprate=TARGET_RATE, loglevel="ERROR")

        return self._decoder

    def _unsupported(self, info: AudioInfo, language: str) -> Transcript:
        """Return the transcript for a language that the model does not handle."""
        return Transcript(
            text="",
            language=language,
            engine=self.name,
            model=MODEL_NAME,
            duration_s=info.duration_s,
            usage=NO_USAGE,
            status=TranscriptStatus.LANGUAGE_UNSUPPORTED,
            note=(
                f"The offline engine transcribes English only, not {language!r}; "
                "set OPENAI_API_KEY to transcribe other languages."
            ),
        )


def _silence_note(sounded: int) -> str:
    """Explain a silent result: no audible segment, or no words decoded."""
    if sounded == 0:
        return "The audio level never rose above the silence threshold."

    return "The audio has sound, but the decoder recognised no words in it."
