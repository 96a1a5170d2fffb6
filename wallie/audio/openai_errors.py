"""Map exceptions of the ``openai`` client to transcription errors."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import openai

from wallie.audio.errors import (
    InvalidApiKey,
    ProviderError,
    ProviderUnavailable,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
)

#: Wait suggested after HTTP 429 when the response names none, in milliseconds.
DEFAULT_RETRY_AFTER_MS = 10_000

#: HTTP statuses below 500 that a later retry may pass: 408 Request Timeout
#: and 409 Conflict.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 409})


def map_error(path: str, error: openai.OpenAIError) -> ProviderError:
    """Return the transcription error for an exception of the ``openai`` client.

    Parameters:
      path: The audio file whose request failed.
      error: The client's exception.

    Returns:
      The matching :mod:`wallie.audio.errors` exception, to be raised ``from``
      the original.
    """
    if isinstance(error, openai.APITimeoutError):
        return ProviderUnavailable(
            path, f"The transcription request for {path} timed out; retry later."
        )
    if isinstance(error, openai.APIConnectionError):
        return ProviderUnavailable(
            path, f"Connecting to the provider for {path} failed; retry later."
        )
    if not isinstance(error, openai.APIStatusError):
        return ProviderUnavailable(
            path,
            f"The provider's reply for {path} was invalid "
            f"({type(error).__name__}); retry later.",
        )

    return _map_status_error(path, error)


def _map_status_error(path: str, error: openai.APIStatusError) -> ProviderError:
    """Map an HTTP error status, reading the error code in the response body."""
    status = error.status_code
    if error.code == "insufficient_quota" or error.type == "insufficient_quota":
        return QuotaExhausted(
            path,
            f"The provider account has no quota left, so {path} was not "
            "transcribed; add credit or use another key.",
            status=status,
        )
    if status == 429:
        hinted = retry_after_ms(error.response.headers)
        wait = DEFAULT_RETRY_AFTER_MS if hinted is None else hinted
        return RateLimited(path, retry_after_ms=wait, hinted=hinted is not None)
    if status in (401, 403):
        return InvalidApiKey(
            path,
            f"The provider rejected the API key (HTTP {status}) while transcribing "
            f"{path}; check OPENAI_API_KEY.",
            status=status,
        )
    if status >= 500 or status in RETRYABLE_CLIENT_STATUSES:
        return ProviderUnavailable(
            path,
            f"The provider returned HTTP {status} for {path}; retry later.",
            status=status,
        )

    return RequestRejected(
        path,
        f"The provider rejected the transcription of {path} with HTTP {status} "
        f"({error.code or 'no error code'}): {error.message}",
        status=status,
    )


def retry_after_ms(headers: Mapping[str, str]) -> int | None:
    """Return the wait that a 429 response requests, in milliseconds.

    Parameters:
      headers: The response headers, looked up in lower case.

    Returns:
      The wait from ``retry-after-ms``, or from ``retry-after`` in seconds or
      as an HTTP date; ``None`` when neither header is present and valid.
    """
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0, round(float(milliseconds)))
        except ValueError:
            pass

    seconds = headers.get("retry-after")
    if seconds is None:
        return None
    try:
        return max(0, round(float(seconds) * 1000))
    except ValueError:
        pass

    try:
        moment = parsedate_to_datetime(seconds)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)

    return max(0, round((moment - datetime.now(UTC)).total_seconds() * 1000))
