"""Speech-to-text through the OpenAI audio transcription API.

The default model is ``gpt-transcribe``.  In the ``openai`` client 3.60.0 it is
the only transcription model without an announced shutdown: ``whisper-1`` and
the ``gpt-4o-*-transcribe`` models are listed for shutdown on 2027-02-26.
OpenAI bills it per minute of audio, so the per-minute cost estimate applies
to it directly.

A file is first decoded locally once: that checks that it is audio within the
limits, measures its real duration and finds silent files, which are never
uploaded.  A file within the upload limits in a container that the API accepts
is then uploaded as it is.  Any other file is decoded again and uploaded in
16 kHz mono WAV chunks, cut at pauses, and the chunk texts are joined.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import openai
import soundfile

from wallie.audio.decode import TARGET_RATE, AudioInfo, Int16Array, decode_pcm16, probe
from wallie.audio.limits import DEFAULT_MAX_DURATION_S, DEFAULT_MAX_SIZE_BYTES
from wallie.audio.openai_errors import map_error
from wallie.audio.segments import has_sound, split_at_pauses
from wallie.audio.types import Transcript, TranscriptStatus, Usage, primary_language
from wallie.logging import get_logger

logger = get_logger(__name__)

#: Model used when none is configured.
DEFAULT_MODEL = "gpt-transcribe"

#: Price of ``gpt-transcribe``, in US dollars per minute of audio: 0.0045, from
#: OpenAI's model page for gpt-transcribe as read on 2026-12-04.  An estimate:
#: check the provider's current price list and pass the real one.
DEFAULT_PRICE_PER_MINUTE_USD = Decimal("0.0045")

#: Largest file sent in one request, in bytes.  OpenAI's limit is stated as
#: 25 MB; this is the smaller, decimal reading of it.
DEFAULT_MAX_UPLOAD_BYTES = 25_000_000

#: Maximum audio duration sent in one request, in seconds.  A failed request is retried
#: whole by the caller, so shorter chunks bound the audio sent twice.
DEFAULT_MAX_CHUNK_S = 600.0

#: Time allowed for one request, upload and transcription included, in seconds.
DEFAULT_TIMEOUT_S = 180.0

#: How far back from a chunk's end to look for a pause to cut at, in seconds.
PAUSE_SEARCH_S = 5.0

#: Room left in a chunk for the WAV header, in bytes; libsndfile writes 44.
WAV_HEADER_ALLOWANCE = 1024

#: Upload file name and media type for each libsndfile container that the
#: transcription API accepts as it is (its list: flac, mp3, mp4, mpeg, mpga,
#: m4a, ogg, wav, webm).  Other containers are re-encoded to WAV chunks.
UPLOAD_TYPES: dict[str, tuple[str, str]] = {
    "OGG": ("audio.ogg", "audio/ogg"),
    "WAV": ("audio.wav", "audio/wav"),
    "FLAC": ("audio.flac", "audio/flac"),
    "MP3": ("audio.mp3", "audio/mpeg"),
}


@dataclass(frozen=True)
class _Reply:
    """Text and billing figures of one transcription request."""

    text: str
    seconds_billed: float
    language: str | None


class OpenAITranscriber:
    """Transcribe audio with an OpenAI-compatible transcription endpoint.

    Parameters:
      api_key: The API key.
      base_url: The API address, or ``None`` for the client library's default.
      model: The transcription model.
      price_per_minute_usd: Estimated price, in US dollars per minute of audio.
      max_duration_s: The maximum accepted audio duration, in seconds.
      max_size_bytes: The maximum accepted file size, in bytes.
      max_upload_bytes: The maximum file size sent in one request, in bytes.
        Larger audio is split into chunks.
      max_chunk_s: The maximum audio duration sent in one request, in seconds.
      timeout_s: Time allowed for one request, in seconds.

    Note:
      The client is built with ``max_retries=0``: the caller owns retries and
      uses :func:`wallie.audio.errors.is_transient` to decide on them.
    """

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        price_per_minute_usd: Decimal = DEFAULT_PRICE_PER_MINUTE_USD,
        max_duration_s: float = DEFAULT_MAX_DURATION_S,
        max_size_bytes: int = DEFAULT_MAX_SIZE_BYTES,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_chunk_s: float = DEFAULT_MAX_CHUNK_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        chunk_samples = min(
            int(max_chunk_s * TARGET_RATE),
            (max_upload_bytes - WAV_HEADER_ALLOWANCE) // 2,
        )
        if chunk_samples < TARGET_RATE:
            raise ValueError(
                "max_upload_bytes and max_chunk_s must allow chunks of at least "
                f"1 s; got {max_upload_bytes} bytes and {max_chunk_s} s."
            )

        self.model = model
        self.price_per_minute_usd = price_per_minute_usd
        self.max_duration_s = max_duration_s
        self.max_size_bytes = max_size_bytes
        self.max_upload_bytes = max_upload_bytes
        self.max_chunk_s = max_chunk_s
        self.chunk_samples = chunk_samples
        self.search_samples = min(int(PAUSE_SEARCH_S * TARGET_RATE), chunk_samples // 4)
        self.client = openai.OpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s
        )

    def transcribe(
        self, path: str | os.PathLike[str], *, language: str | None = None
    ) -> Transcript:
        """Transcribe an audio file with the provider.

        Parameters:
          path: The audio file.
          language: ISO 639-1 code or BCP 47 tag, sent to the provider as a
            hint; ``None`` lets the provider detect the language.

        Returns:
          The transcript.  Its status is ``SILENT`` when the audio level never
          rose above the silence threshold (nothing is uploaded then) or the
          provider returned no text.

        Raises:
          wallie.audio.errors.AudioFileError: The file is empty, too large, too
            long, not audio, in an unsupported format or corrupt.
          wallie.audio.errors.ProviderError: A request failed; see
            :func:`wallie.audio.errors.is_transient`.
        """
        info = probe(
            path, max_size_bytes=self.max_size_bytes, max_duration_s=self.max_duration_s
        )
        requested = primary_language(language)
        samples, audible = self._scan(info)
        duration_s = samples / TARGET_RATE
        if not audible:
            logger.info(
                "Skipped %s: the audio is silent, so nothing was sent.", info.path
            )
            return self._silent(info, requested, duration_s)

        started = time.perf_counter()
        if self._fits_one_request(info, duration_s):
            replies = [self._send_file(info, requested, duration_s)]
        else:
            replies = self._send_chunks(info, requested)
        logger.info(
            "Transcribed %s with %s: %.1f s of audio in %d requests in %.1f s.",
            info.path,
            self.model,
            duration_s,
            len(replies),
            time.perf_counter() - started,
        )
        return self._transcript(replies, requested, duration_s)

    def _scan(self, info: AudioInfo) -> tuple[int, bool]:
        """Decode the whole file once; return its 16 kHz sample count and audibility."""
        samples = 0
        audible = False
        for block in decode_pcm16(info, max_duration_s=self.max_duration_s):
            samples += block.size
            audible = audible or has_sound(block)

        return samples, audible

    def _fits_one_request(self, info: AudioInfo, duration_s: float) -> bool:
        """Return whether the original file can be uploaded as it is."""
        return (
            info.container in UPLOAD_TYPES
            and info.size_bytes <= self.max_upload_bytes
            and duration_s <= self.max_chunk_s
        )

    def _send_file(
        self, info: AudioInfo, language: str | None, duration_s: float
    ) -> _Reply:
        """Upload the original file in one request."""
        filename, media_type = UPLOAD_TYPES[info.container]
        content = Path(info.path).read_bytes()
        return self._request(
            info.path, (filename, content, media_type), language, duration_s
        )

    def _send_chunks(self, info: AudioInfo, language: str | None) -> list[_Reply]:
        """Upload the audio as WAV chunks cut at pauses, skipping silent chunks.

        Note:
          Chunks are sent while decoding goes on.  When a request fails, the
          caller's retry sends the earlier chunks again, and they are billed again.
        """
        replies: list[_Reply] = []
        blocks = decode_pcm16(info, max_duration_s=self.max_duration_s)
        chunks = split_at_pauses(
            blocks, max_samples=self.chunk_samples, search_samples=self.search_samples
        )
        for number, chunk in enumerate(chunks, start=1):
            if not has_sound(chunk):
                continue

            upload = (f"chunk-{number:03d}.wav", encode_wav(chunk), "audio/wav")
            replies.append(
                self._request(info.path, upload, language, chunk.size / TARGET_RATE)
            )

        return replies

    def _request(
        self,
        path: str,
        upload: tuple[str, bytes, str],
        language: str | None,
        duration_s: float,
    ) -> _Reply:
        """Send one transcription request and map the client's errors.

        Raises:
          wallie.audio.errors.ProviderError: The request failed.
        """
        try:
            response = self.client.audio.transcriptions.create(
                file=upload,
                model=self.model,
                language=language if language is not None else openai.omit,
                response_format="json",
            )
        except openai.OpenAIError as error:
            mapped = map_error(path, error)
            logger.warning(
                "Transcription request for %s failed: %s (HTTP %s).",
                path,
                type(mapped).__name__,
                mapped.status,
            )
            raise mapped from error

        return _Reply(
            text=response.text.strip(),
            seconds_billed=_billed_seconds(response, duration_s),
            language=_detected_language(response),
        )

    def _transcript(
        self, replies: list[_Reply], requested: str | None, duration_s: float
    ) -> Transcript:
        """Join the replies into one transcript with its usage."""
        text = " ".join(reply.text for reply in replies if reply.text)
        seconds = sum(reply.seconds_billed for reply in replies)
        detected = next((reply.language for reply in replies if reply.language), None)
        status = TranscriptStatus.TRANSCRIBED if text else TranscriptStatus.SILENT
        note = "" if text else "The provider returned no words for the audio."
        return Transcript(
            text=text,
            language=requested or detected,
            engine=self.name,
            model=self.model,
            duration_s=duration_s,
            usage=Usage(
                seconds_billed=seconds,
                cost_usd=self.cost_usd(seconds),
                requests=len(replies),
            ),
            status=status,
            segments=len(replies),
            note=note,
        )

    def _silent(
        self, info: AudioInfo, requested: str | None, duration_s: float
    ) -> Transcript:
        """Return the transcript of audio that was never sent because it is silent."""
        return Transcript(
            text="",
            language=requested,
            engine=self.name,
            model=self.model,
            duration_s=duration_s,
            usage=Usage(seconds_billed=0.0, cost_usd=Decimal("0"), requests=0),
            status=TranscriptStatus.SILENT,
            segments=0,
            note="The audio level never rose above the silence threshold.",
        )

    def cost_usd(self, seconds: float) -> Decimal:
        """Return the estimated cost of ``seconds`` of audio, in US dollars.

        Parameters:
          seconds: Billed audio, in seconds.

        Returns:
          The cost, rounded to a millionth of a dollar.
        """
        minutes = Decimal(str(round(seconds, 3))) / Decimal(60)
        cost = minutes * self.price_per_minute_usd
        return cost.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def encode_wav(samples: Int16Array) -> bytes:
    """Encode 16 kHz mono samples as a 16-bit PCM WAV file in memory.

    Parameters:
      samples: 16-bit samples at :data:`TARGET_RATE`.

    Returns:
      The WAV file's bytes: 44 bytes of header, then 2 bytes per sample.
    """
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, TARGET_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _billed_seconds(response: object, duration_s: float) -> float:
    """Return the seconds that the provider reported billing, else the duration."""
    usage = getattr(response, "usage", None)
    if getattr(usage, "type", None) == "duration":
        return float(usage.seconds)  # type: ignore[union-attr]

    return duration_s


def _detected_language(response: object) -> str | None:
    """Return the first language that the provider detected, if it named one."""
    languages = getattr(response, "languages", None)
    if not languages:
        return None

    return primary_language(getattr(languages[0], "code", None))
