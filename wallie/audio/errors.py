"""Errors raised while transcribing audio files.

Every error is either permanent or transient.  A permanent error (a bad file,
a file over a limit, a rejected key) fails again on every retry, so the caller
marks the attachment and stops.  A transient error (a rate limit, a provider
outage) may pass on a later try, so the caller retries it with backoff.
:func:`is_permanent` and :func:`is_transient` tell them apart.
"""

from __future__ import annotations

from typing import ClassVar

from wallie.errors import WallieError


class TranscriptionError(WallieError):
    """Raised when an audio file cannot be transcribed; base of the errors below.

    Attributes:
      path: The audio file, as given by the caller.
      transient: Whether a later retry may succeed.
    """

    transient: ClassVar[bool] = False

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class AudioFileError(TranscriptionError):
    """Raised when the file itself cannot be transcribed; always permanent."""


class EmptyAudioFile(AudioFileError):
    """Raised when the file has 0 bytes."""

    def __init__(self, path: str) -> None:
        super().__init__(
            path,
            f"{path} is empty (0 bytes), so there is no audio to transcribe. "
            "Download the attachment again; if it is still empty, the sender's "
            "upload failed.",
        )


class AudioTooLarge(AudioFileError):
    """Raised before decoding when the file is larger than the size limit.

    Attributes:
      size_bytes: The file size, in bytes.
      max_size_bytes: The limit, in bytes.
    """

    def __init__(self, path: str, size_bytes: int, max_size_bytes: int) -> None:
        super().__init__(
            path,
            f"{path} is {size_bytes} bytes, more than the limit of "
            f"{max_size_bytes} bytes, so it was not decoded. Raise the size "
            "limit or split the recording.",
        )
        self.size_bytes = size_bytes
        self.max_size_bytes = max_size_bytes


class AudioTooLong(AudioFileError):
    """Raised when the audio lasts longer than the duration limit.

    Attributes:
      duration_s: The duration found, in seconds; a lower bound when the file
        header under-reported it and decoding stopped at the limit.
      max_duration_s: The limit, in seconds.
    """

    def __init__(self, path: str, duration_s: float, max_duration_s: float) -> None:
        super().__init__(
            path,
            f"{path} lasts {duration_s:.1f} s, more than the limit of "
            f"{max_duration_s:.1f} s, so it was not transcribed. Raise the "
            "duration limit or split the recording.",
        )
        self.duration_s = duration_s
        self.max_duration_s = max_duration_s


class NotAudioFile(AudioFileError):
    """Raised when the file is not audio, for example a PDF renamed to ``.opus``.

    Attributes:
      detected: What the first bytes look like, for example ``"a PDF document"``.
    """

    def __init__(self, path: str, detected: str) -> None:
        super().__init__(
            path,
            f"{path} is not an audio file: its content looks like {detected}. "
            "Check that the right attachment was stored under this name.",
        )
        self.detected = detected


class UnsupportedAudioFormat(AudioFileError):
    """Raised when the file is audio in a container that cannot be decoded here.

    Attributes:
      container: The container found, for example ``"MP4/M4A"``.
    """

    def __init__(self, path: str, container: str) -> None:
        super().__init__(
            path,
            f"{path} is {container} audio, which libsndfile cannot decode. "
            "Convert it to Ogg/Opus, FLAC, WAV or MP3 and transcribe it again.",
        )
        self.container = container


class CorruptAudioFile(AudioFileError):
    """Raised when the file starts like audio but does not decode.

    Attributes:
      reason: The decoder's description of the problem.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            path,
            f"{path} looks like audio but does not decode: {reason}. The file "
            "is damaged or truncated; download the attachment again.",
        )
        self.reason = reason


class ProviderError(TranscriptionError):
    """Raised when the speech-to-text provider fails a request.

    Attributes:
      status: The HTTP status code, or ``None`` when no response arrived.
    """

    def __init__(self, path: str, message: str, status: int | None = None) -> None:
        super().__init__(path, message)
        self.status = status


class RateLimited(ProviderError):
    """Raised when the provider returns HTTP 429 for a rate limit; transient.

    Attributes:
      retry_after_ms: How long to wait before the retry, in milliseconds.
      hinted: Whether the provider sent that wait; ``False`` means it is the
        default wait.
    """

    transient = True

    def __init__(self, path: str, retry_after_ms: int, hinted: bool) -> None:
        super().__init__(
            path,
            f"The provider rate-limited the transcription of {path}; retry "
            f"after {retry_after_ms} ms.",
            status=429,
        )
        self.retry_after_ms = retry_after_ms
        self.hinted = hinted


class ProviderUnavailable(ProviderError):
    """Raised on HTTP 5xx, 408 or 409, a timeout or a failed connection; transient."""

    transient = True


class QuotaExhausted(ProviderError):
    """Raised when the provider account has no quota or credit left; permanent.

    Note:
      Retrying cannot help until someone adds credit, so the caller stops and
      may switch to the offline engine.
    """


class InvalidApiKey(ProviderError):
    """Raised when the provider rejects the API key (HTTP 401 or 403); permanent."""


class RequestRejected(ProviderError):
    """Raised when the provider rejects the request itself (other 4xx); permanent."""


def is_transient(error: BaseException) -> bool:
    """Return whether a retry of the failed transcription may succeed.

    Parameters:
      error: An exception raised by a transcriber.

    Returns:
      ``True`` for rate limits and provider outages; ``False`` for every other
      error, including exceptions that are not :class:`TranscriptionError`.
    """
    return isinstance(error, TranscriptionError) and error.transient


def is_permanent(error: BaseException) -> bool:
    """Return whether the attachment should be marked as failed without a retry.

    Parameters:
      error: An exception raised by a transcriber.

    Returns:
      ``True`` for :class:`TranscriptionError` instances that are not transient.
      ``False`` for transient errors and for exceptions from outside this
      package, which the caller handles with its default retry policy.
    """
    return isinstance(error, TranscriptionError) and not error.transient
