"""Errors raised by the mail provider clients (Gmail and Outlook).

Every error carries the facts a caller needs to decide what to do next as
attributes: ``provider`` (``"gmail"`` or ``"outlook"``), ``account`` (the Wallie
account id the client was built for) and, for rate limits, ``retry_after_ms``.
:func:`is_permanent` separates errors that retrying cannot fix from those that
it can.
"""

from __future__ import annotations

from wallie.errors import WallieError

#: Variable that contains the comma-separated Fernet keys for stored OAuth tokens.
TOKEN_KEYS_VARIABLE = "WALLIE_TOKEN_KEYS"

#: Shell command that prints a new Fernet key.
GENERATE_KEY_COMMAND = (
    'python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


class MailProviderError(WallieError):
    """Raised when a mail provider request fails.

    Attributes:
      provider: ``"gmail"`` or ``"outlook"``.
      account: The Wallie account id, or ``None`` when the client has none.
      permanent: Whether retrying the same request can never succeed.
    """

    permanent: bool = False

    def __init__(self, message: str, *, provider: str, account: str | None) -> None:
        super().__init__(message)
        self.provider = provider
        self.account = account


class ProviderRateLimited(MailProviderError):
    """Raised when the provider rejects a request because of a rate limit.

    Attributes:
      retry_after_ms: How long to wait before the next request, in milliseconds,
        taken from the server's hint or from the client's default backoff.
      hinted: Whether ``retry_after_ms`` came from the server.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        account: str | None,
        retry_after_ms: int,
        hinted: bool,
    ) -> None:
        super().__init__(message, provider=provider, account=account)
        self.retry_after_ms = retry_after_ms
        self.hinted = hinted


class ProviderUnavailable(MailProviderError):
    """Raised when the provider returns a server error (5xx) or times out."""


class ProviderRequestFailed(MailProviderError):
    """Raised when the provider rejects a request for a reason retrying cannot fix.

    Attributes:
      status: The HTTP status code.
    """

    permanent = True

    def __init__(
        self, message: str, *, provider: str, account: str | None, status: int
    ) -> None:
        super().__init__(message, provider=provider, account=account)
        self.status = status


class TokenRevoked(MailProviderError):
    """Raised when the OAuth grant is gone and the user must connect the mailbox again.

    Attributes:
      reason: The provider's error code, such as ``invalid_grant``.
    """

    permanent = True

    def __init__(
        self, message: str, *, provider: str, account: str | None, reason: str
    ) -> None:
        super().__init__(message, provider=provider, account=account)
        self.reason = reason


class HistoryExpired(MailProviderError):
    """Raised when Gmail no longer has the stored ``startHistoryId``.

    The caller runs one full sync and stores the history id it returns.

    Attributes:
      start_history_id: The history id that Gmail rejected.
    """

    def __init__(
        self, message: str, *, provider: str, account: str | None, start_history_id: str
    ) -> None:
        super().__init__(message, provider=provider, account=account)
        self.start_history_id = start_history_id


class DeltaExpired(MailProviderError):
    """Raised when Graph rejects a stored delta link as expired for a mail folder.

    The caller drops the delta link and runs the folder's delta from the start.

    Attributes:
      folder: The mail folder whose delta link expired.
    """

    def __init__(
        self, message: str, *, provider: str, account: str | None, folder: str
    ) -> None:
        super().__init__(message, provider=provider, account=account)
        self.folder = folder


class TokenKeyMissing(WallieError):
    """Raised when no Fernet key is configured for stored OAuth tokens.

    Attributes:
      variable: The environment variable to set.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.variable = TOKEN_KEYS_VARIABLE


class TokenDecryptionFailed(WallieError):
    """Raised when a stored OAuth token cannot be decrypted with any configured key.

    Attributes:
      variable: The environment variable that contains the keys.
      account: The Wallie account id whose token failed, or ``None``.
    """

    def __init__(self, message: str, *, account: str | None = None) -> None:
        super().__init__(message)
        self.variable = TOKEN_KEYS_VARIABLE
        self.account = account


def is_permanent(error: BaseException) -> bool:
    """Tell whether retrying the failed operation later can never succeed.

    Parameters:
      error: The exception a provider call raised.

    Returns:
      ``True`` for a revoked grant, a rejected request, a missing key or a key
      that cannot decrypt the stored token. ``False`` for rate limits, server
      errors, and expired history or delta cursors, which a retry or a resync
      fixes. Unknown exceptions count as transient.
    """
    if isinstance(error, TokenKeyMissing | TokenDecryptionFailed):
        return True

    if isinstance(error, MailProviderError):
        return error.permanent

    return False
