"""Errors raised by the model-backed conversation analyzer.

Callers decide what to do from the class alone: retry after
``retry_after_ms`` for :class:`ProviderRateLimited`, retry with backoff for
:class:`ProviderUnavailable`, and never retry an error whose ``permanent``
attribute is true (quota, authentication, a rejected request). After
:class:`InvalidModelOutput`, one more call may succeed, or the caller falls
back to the offline analyzer.
"""

from __future__ import annotations

from wallie.errors import WallieError


class AnalysisError(WallieError):
    """Base class of the analyzer's errors.

    Attributes:
      permanent: Whether sending the same request again can never succeed.
    """

    permanent: bool = False


class ProviderRateLimited(AnalysisError):
    """Raised when the provider answers 429 because of a rate limit.

    Attributes:
      retry_after_ms: How long to wait before the next request, in
        milliseconds, from the ``retry-after-ms`` or ``retry-after`` header,
        or the analyzer's default backoff when neither is present.
      hinted: Whether ``retry_after_ms`` came from a header.
    """

    def __init__(self, message: str, *, retry_after_ms: int, hinted: bool) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms
        self.hinted = hinted


class ProviderQuotaExhausted(AnalysisError):
    """Raised when the account has no credit left (``insufficient_quota``)."""

    permanent = True


class ProviderAuthError(AnalysisError):
    """Raised when the provider rejects the API key (401) or its permissions (403)."""

    permanent = True


class ProviderUnavailable(AnalysisError):
    """Raised on a server error (5xx), a timeout or a failed connection."""


class ProviderRequestFailed(AnalysisError):
    """Raised when the provider rejects the request itself, such as an unknown model.

    Attributes:
      status: The HTTP status code.
    """

    permanent = True

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class InvalidModelOutput(AnalysisError):
    """Raised when the model's reply is not valid JSON or breaks the schema.

    Attributes:
      path: Where in the reply the problem is, such as ``reminders[1].due_at``,
        or an empty string for the reply as a whole.
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path
