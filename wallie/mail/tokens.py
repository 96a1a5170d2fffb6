"""OAuth tokens: encryption at rest and refresh for Google and Microsoft.

Tokens are stored as JSON encrypted with :class:`cryptography.fernet.MultiFernet`.
The keys come from the ``WALLIE_TOKEN_KEYS`` setting, a comma-separated list of
Fernet keys.
The first key encrypts and every key decrypts. To roll out a new key, put it
first, run :meth:`TokenCipher.rotate` over the stored tokens, then remove the
old key.

A refresh that fails for good (``invalid_grant``, a missing refresh token) raises
:class:`~wallie.mail.errors.TokenRevoked`; the user must connect the mailbox again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httplib2
import requests
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials

from wallie.logging import get_logger
from wallie.settings import Settings, get_settings, load_settings

from .errors import (
    GENERATE_KEY_COMMAND,
    TOKEN_KEYS_VARIABLE,
    ProviderRateLimited,
    ProviderUnavailable,
    TokenDecryptionFailed,
    TokenKeyMissing,
    TokenRevoked,
)
from .ratelimit import DEFAULT_BACKOFF_MS, parse_retry_after_header, utc_now

if TYPE_CHECKING:
    from O365 import Connection

logger = get_logger(__name__)

#: Google's OAuth 2.0 token endpoint.
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"

#: Microsoft identity platform host; the token endpoint is
#: ``{host}/{tenant}/oauth2/v2.0/token``.
MICROSOFT_AUTHORITY_URL = "https://login.microsoftonline.com"

#: A token expiring within this many seconds is refreshed before use, so it does
#: not expire between the check and the request.
EXPIRY_LEEWAY_S = 60

#: OAuth error codes after which only a new consent helps (RFC 6749 section 5.2).
#: ``invalid_request`` is here because the token endpoint returns it for a
#: refresh without a refresh token (Azure AD: AADSTS900144).
PERMANENT_OAUTH_ERRORS = frozenset(
    {"invalid_grant", "invalid_request", "invalid_client", "unauthorized_client"}
)

_AADSTS_CODE = re.compile(r"AADSTS\d+")


@dataclass(frozen=True)
class OAuthToken:
    """OAuth token set of one mailbox, as stored (encrypted) between runs.

    Attributes:
      access_token: The bearer token for API requests.
      refresh_token: The token that obtains new access tokens, or ``None``.
      expires_at: When ``access_token`` expires, aware UTC, or ``None`` if unknown.
      scopes: Granted scopes.
      client_id: The OAuth client that the grant belongs to, or ``None`` when the
        caller supplies it. A refresh token only works with its own client.
      client_secret: That client's secret, or ``None`` for a public client.
      token_uri: The token endpoint to refresh at, or ``None`` for the provider's
        default.
    """

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    scopes: tuple[str, ...] = ()
    client_id: str | None = None
    client_secret: str | None = None
    token_uri: str | None = None

    def __repr__(self) -> str:
        # Keeps secrets out of tracebacks and log lines that format the object.
        return f"OAuthToken(expires_at={self.expires_at!r}, scopes={self.scopes!r})"

    def is_expired(self, now: datetime, leeway_s: int = EXPIRY_LEEWAY_S) -> bool:
        """Tell whether the access token expires within ``leeway_s`` seconds of ``now``.

        A token without a known expiry counts as valid until the API rejects it.
        """
        if self.expires_at is None:
            return False

        return self.expires_at <= now + timedelta(seconds=leeway_s)

    def to_json(self) -> str:
        """Serialize to the JSON stored (encrypted) in the database."""
        expires = self.expires_at.isoformat() if self.expires_at else None
        return json.dumps(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_at": expires,
                "scopes": list(self.scopes),
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "token_uri": self.token_uri,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> OAuthToken:
        """Load a token written by :meth:`to_json`.

        Raises:
          ValueError: When ``text`` is not such a JSON object.
        """
        data = json.loads(text)
        if not isinstance(data, dict) or not data.get("access_token"):
            raise ValueError("Token JSON has no access_token.")

        expires = data.get("expires_at")
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=data.get("refresh_token"),
            expires_at=datetime.fromisoformat(expires) if expires else None,
            scopes=tuple(data.get("scopes") or ()),
            client_id=data.get("client_id"),
            client_secret=data.get("client_secret"),
            token_uri=data.get("token_uri"),
        )


class TokenCipher:
    """Encrypts and decrypts stored OAuth tokens with one or more Fernet keys.

    Parameters:
      keys_setting: Comma-separated Fernet keys. The first key encrypts.

    Raises:
      TokenKeyMissing: When ``keys_setting`` is empty or a key is malformed.
    """

    def __init__(self, keys_setting: str | None) -> None:
        keys = [key.strip() for key in (keys_setting or "").split(",") if key.strip()]
        if not keys:
            raise TokenKeyMissing(
                f"{TOKEN_KEYS_VARIABLE} is not set: it must contain at least one "
                f"Fernet key. Generate one with: {GENERATE_KEY_COMMAND}"
            )

        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError) as error:
                raise TokenKeyMissing(
                    f"{TOKEN_KEYS_VARIABLE} key number {position} is invalid: expected "
                    "32 url-safe base64-encoded bytes. Generate one with: "
                    f"{GENERATE_KEY_COMMAND}"
                ) from error

        self._fernet = MultiFernet(fernets)

    def encrypt(self, token: OAuthToken) -> str:
        """Encrypt ``token`` with the first key.

        Returns:
          The Fernet token as text, safe to store in a text column.
        """
        return self._fernet.encrypt(token.to_json().encode()).decode("ascii")

    def decrypt(self, ciphertext: str, *, account: str | None = None) -> OAuthToken:
        """Decrypt a stored token with whichever configured key encrypted it.

        Parameters:
          ciphertext: The text :meth:`encrypt` returned.
          account: The Wallie account id, for the error message.

        Raises:
          TokenDecryptionFailed: When no configured key decrypts ``ciphertext``.
        """
        try:
            plaintext = self._fernet.decrypt(ciphertext.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError) as error:
            raise TokenDecryptionFailed(
                f"The stored OAuth token of account {account} cannot be decrypted with "
                f"any key in {TOKEN_KEYS_VARIABLE}. Add the key it was encrypted with "
                "to the list, or connect the mailbox again.",
                account=account,
            ) from error

        return OAuthToken.from_json(plaintext.decode())

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt a stored token with the first key.

        Raises:
          TokenDecryptionFailed: When no configured key decrypts ``ciphertext``.
        """
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError) as error:
            raise TokenDecryptionFailed(
                f"A stored OAuth token cannot be decrypted with any key in "
                f"{TOKEN_KEYS_VARIABLE}, so it cannot be rotated."
            ) from error


def load_token_cipher(
    environ: Mapping[str, str] | None = None, *, settings: Settings | None = None
) -> TokenCipher:
    """Build the cipher from the ``WALLIE_TOKEN_KEYS`` setting.

    Parameters:
      environ: An environment to read the settings from, in place of the
        process settings.
      settings: Settings to take the keys from. They win over ``environ``.

    Raises:
      TokenKeyMissing: When the variable is unset, empty or malformed.
    """
    if settings is None:
        settings = get_settings() if environ is None else load_settings(environ)

    return TokenCipher(settings.token_keys)


# Google.


def revoked_reason(error: RefreshError) -> str | None:
    """Return the OAuth error code when a google-auth refresh failed for good.

    Parameters:
      error: The error ``Credentials.refresh`` raised.

    Returns:
      ``"invalid_grant"`` or another code from :data:`PERMANENT_OAUTH_ERRORS`,
      ``"missing_refresh_token"`` when the credentials cannot refresh at all,
      or ``None`` when a later retry can succeed.
    """
    if getattr(error, "retryable", False):
        return None

    details = error.args[1] if len(error.args) > 1 else None
    if isinstance(details, Mapping):
        code = str(details.get("error", ""))
        return code if code in PERMANENT_OAUTH_ERRORS else None

    text = str(error.args[0]) if error.args else ""
    if "refresh_token" in text or "necessary fields" in text:
        return "missing_refresh_token"

    if text.split(":", 1)[0] in PERMANENT_OAUTH_ERRORS:
        return text.split(":", 1)[0]

    return None


def google_credentials(
    token: OAuthToken,
    *,
    client_id: str,
    client_secret: str,
    token_uri: str = GOOGLE_TOKEN_URI,
) -> Credentials:
    """Build google-auth credentials from a stored token.

    Parameters:
      token: The stored token.
      client_id: The OAuth client id.
      client_secret: The OAuth client secret.
      token_uri: The token endpoint; tests pass a local server.

    Returns:
      Credentials that google-auth refreshes against ``token_uri``.
    """
    expiry = None
    if token.expires_at is not None:
        # google-auth compares expiry with a naive UTC datetime.
        expiry = token.expires_at.astimezone(UTC).replace(tzinfo=None)

    return Credentials(
        token=token.access_token,
        refresh_token=token.refresh_token,
        token_uri=token_uri,
        client_id=client_id,
        client_secret=client_secret,
        scopes=list(token.scopes) or None,
        expiry=expiry,
    )


def token_from_google(credentials: Credentials, previous: OAuthToken) -> OAuthToken:
    """Return the stored-token form of refreshed google-auth credentials."""
    expires_at = None
    if credentials.expiry is not None:
        expires_at = credentials.expiry.replace(tzinfo=UTC)

    return replace(
        previous,
        access_token=str(credentials.token),
        refresh_token=credentials.refresh_token or previous.refresh_token,
        expires_at=expires_at,
        scopes=tuple(credentials.granted_scopes or previous.scopes),
    )


def refresh_google_token(
    credentials: Credentials,
    previous: OAuthToken,
    *,
    http: httplib2.Http | None = None,
    account: str | None = None,
) -> OAuthToken:
    """Refresh a Google access token.

    Parameters:
      credentials: Credentials from :func:`google_credentials`.
      previous: The stored token, whose refresh token is kept when Google sends
        no new one.
      http: The httplib2 object for the token request. A new one is made when
        omitted.
      account: The Wallie account id, for errors and log lines.

    Returns:
      The new token, to encrypt and store.

    Raises:
      TokenRevoked: When Google rejects the refresh token for good.
      ProviderUnavailable: When the refresh fails in a way a retry can fix.
    """
    import google_auth_httplib2

    request = google_auth_httplib2.Request(http or httplib2.Http())
    try:
        credentials.refresh(request)
    except RefreshError as error:
        reason = revoked_reason(error)
        if reason is None:
            raise ProviderUnavailable(
                f"Google token refresh for account {account} failed for now.",
                provider="gmail",
                account=account,
            ) from error

        logger.warning(
            "Google refresh token of account %s was rejected (%s).", account, reason
        )
        raise TokenRevoked(
            f"Google rejected the refresh token of account {account} ({reason}); "
            "the user must connect the mailbox again.",
            provider="gmail",
            account=account,
            reason=reason,
        ) from error
    except TransportError as error:
        raise ProviderUnavailable(
            f"Google token refresh for account {account} failed: {error}",
            provider="gmail",
            account=account,
        ) from error

    logger.info("Refreshed the Google access token of account %s.", account)
    return token_from_google(credentials, previous)


def google_http(credentials: Credentials, http: httplib2.Http | None = None) -> Any:
    """Wrap an httplib2 object so it signs requests and refreshes the token.

    Parameters:
      credentials: Credentials from :func:`google_credentials`.
      http: The transport to wrap. A new one is made when omitted.

    Returns:
      A ``google_auth_httplib2.AuthorizedHttp`` to pass to ``GmailClient``.
    """
    import google_auth_httplib2

    transport = http or httplib2.Http()
    return google_auth_httplib2.AuthorizedHttp(credentials, http=transport)


# Microsoft.


def microsoft_token_url(
    tenant: str = "common", authority_url: str = MICROSOFT_AUTHORITY_URL
) -> str:
    """Return the Azure AD v2.0 token endpoint of ``tenant``."""
    return f"{authority_url.rstrip('/')}/{tenant}/oauth2/v2.0/token"


def _microsoft_error(response: requests.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", ""

    if not isinstance(body, dict):
        return "", ""

    return str(body.get("error", "")), str(body.get("error_description", ""))


def _microsoft_failure(
    response: requests.Response, account: str | None, now: datetime
) -> Exception:
    """Map a failed Azure AD token response to a provider error."""
    code, description = _microsoft_error(response)
    match = _AADSTS_CODE.search(description)
    aadsts = match.group(0) if match else "no AADSTS code"
    where = f"Microsoft token refresh for account {account}"

    if response.status_code == 429:
        hinted = parse_retry_after_header(response.headers.get("Retry-After"), now=now)
        return ProviderRateLimited(
            f"{where} was rate-limited.",
            provider="outlook",
            account=account,
            retry_after_ms=DEFAULT_BACKOFF_MS if hinted is None else hinted,
            hinted=hinted is not None,
        )

    transient_codes = ("temporarily_unavailable", "server_error")
    if response.status_code >= 500 or code in transient_codes:
        return ProviderUnavailable(
            f"{where} failed with {response.status_code} {code} ({aadsts}).",
            provider="outlook",
            account=account,
        )

    logger.warning(
        "Microsoft refresh token of account %s was rejected (%s, %s).",
        account,
        code,
        aadsts,
    )
    return TokenRevoked(
        f"{where} was rejected with {code} ({aadsts}); "
        "the user must connect the mailbox again.",
        provider="outlook",
        account=account,
        reason=code or str(response.status_code),
    )


def refresh_microsoft_token(
    connection: Connection,
    token: OAuthToken,
    *,
    client_id: str,
    client_secret: str | None,
    token_url: str,
    account: str | None = None,
    clock: Any = utc_now,
) -> OAuthToken:
    """Refresh a Microsoft access token at the Azure AD token endpoint.

    The request goes through the O365 connection's naive session (no
    Authorization header), so proxy, TLS and timeout settings match the API
    requests.

    Parameters:
      connection: The O365 connection of the mailbox.
      token: The stored token.
      client_id: The app registration's client id.
      client_secret: The client secret, or ``None`` for a public client.
      token_url: The token endpoint, see :func:`microsoft_token_url`.
      account: The Wallie account id, for errors and log lines.
      clock: Function that returns the current aware UTC time.

    Returns:
      The new token, to encrypt and store. Azure AD rotates the refresh token.

    Raises:
      TokenRevoked: When there is no refresh token or Azure AD rejects it
        (for example AADSTS700082, expired after 90 days without use).
      ProviderRateLimited: When the endpoint returns 429.
      ProviderUnavailable: When the endpoint fails in a way a retry can fix.
    """
    if not token.refresh_token:
        raise TokenRevoked(
            f"The stored Microsoft token of account {account} has no refresh token; "
            "the user must connect the mailbox again with the offline_access scope.",
            provider="outlook",
            account=account,
            reason="missing_refresh_token",
        )

    form = {
        "client_id": client_id,
        "grant_type": "refresh_token",
        "refresh_token": token.refresh_token,
        "scope": " ".join(token.scopes),
    }
    if client_secret:
        form["client_secret"] = client_secret

    # NOTE: Connection.naive_request is not used because O365 2.1.10 raises
    # AttributeError while logging any 4xx whose "error" is a string, which is
    # the shape of every Azure AD token error. The connection's naive session
    # keeps its proxy and TLS settings.
    session = connection.naive_session or connection.get_naive_session()
    connection.naive_session = session
    try:
        response = session.post(token_url, data=form, timeout=connection.timeout)
    except requests.RequestException as error:
        raise ProviderUnavailable(
            f"Microsoft token refresh for account {account} failed: "
            f"{type(error).__name__}.",
            provider="outlook",
            account=account,
        ) from error

    now = clock()
    if response.status_code != 200:
        raise _microsoft_failure(response, account, now)

    body = response.json()
    logger.info("Refreshed the Microsoft access token of account %s.", account)
    expires_in = body.get("expires_in")
    scopes = str(body.get("scope", "")).split() or list(token.scopes)
    return replace(
        token,
        access_token=str(body["access_token"]),
        refresh_token=body.get("refresh_token") or token.refresh_token,
        expires_at=now + timedelta(seconds=int(expires_in)) if expires_in else None,
        scopes=tuple(scopes),
    )
