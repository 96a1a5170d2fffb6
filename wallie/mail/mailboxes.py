"""Connected mailboxes: encrypted tokens, states, sync cursors and reconnect notices.

A :class:`~wallie.db.models.Mailbox` row is one Gmail or Outlook account of a
user with its OAuth token encrypted by :class:`~wallie.mail.tokens.TokenCipher`.
Sync cursors (Gmail's history id, one Graph delta link per Outlook folder) are
:class:`~wallie.db.models.SyncState` rows keyed by the mailbox address, so
connecting the same address again keeps its cursors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wallie.db.fields import utcnow
from wallie.db.models import Mailbox, OutboxItem, SyncState, User
from wallie.errors import NotFound, WallieError
from wallie.logging import get_logger
from wallie.notify import add_notification
from wallie.storage import normalise_email

from .errors import TokenRevoked
from .tokens import OAuthToken, TokenCipher

logger = get_logger(__name__)

#: Providers a mailbox can belong to.
PROVIDERS = ("gmail", "outlook")

#: Mailbox states: ``active`` is synced, ``needs_reconnect`` waits for the user to
#: connect it again, ``paused`` is skipped until an operator resumes it.
STATES = ("active", "needs_reconnect", "paused")

#: Kind of the in-app notification that requests the user to connect a mailbox again.
RECONNECT_KIND = "mailbox_reconnect"

#: Maximum length of ``Mailbox.last_error``, in characters.
MAX_ERROR_LENGTH = 2000

#: Keys of a token file that hold the access token, in order of preference:
#: ``token`` is what google-auth's ``Credentials.to_json()`` writes.
ACCESS_TOKEN_KEYS = ("access_token", "token")


class TokenFileInvalid(WallieError):
    """Raised when a token file is missing, is not JSON or lacks required keys."""


@dataclass(frozen=True)
class MailboxView:
    """A mailbox as listed to operators, without its token."""

    id: int
    user_email: str
    provider: str
    address: str
    state: str
    last_sync_at: datetime | None
    last_error: str

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as JSON-ready values."""
        synced = self.last_sync_at.isoformat() if self.last_sync_at else None
        return {
            "id": self.id,
            "user": self.user_email,
            "provider": self.provider,
            "address": self.address,
            "state": self.state,
            "last_sync_at": synced,
            "last_error": self.last_error,
        }


def get_mailbox(mailbox_id: int) -> Mailbox:
    """Return mailbox ``mailbox_id``.

    Raises:
      NotFound: When no mailbox has that id.
    """
    mailbox = Mailbox.get_or_none(Mailbox.id == mailbox_id)
    if mailbox is None:
        raise NotFound("mailbox", mailbox_id)

    return mailbox


def connect_mailbox(
    user: User, provider: str, address: str, token: OAuthToken, cipher: TokenCipher
) -> tuple[Mailbox, bool]:
    """Store ``token`` encrypted for the mailbox, creating the mailbox if missing.

    Connecting an existing mailbox again replaces its token and makes it active,
    which is how a user recovers a mailbox in ``needs_reconnect``.

    Parameters:
      user: The mailbox owner.
      provider: ``gmail`` or ``outlook``.
      address: The mailbox address, stored lower-cased.
      token: The token obtained from the provider.
      cipher: The cipher that encrypts the token.

    Returns:
      The mailbox and whether it was created.

    Raises:
      ValueError: When ``provider`` is unknown.
    """
    if provider not in PROVIDERS:
        raise ValueError(
            f"Provider {provider!r} is invalid: expected gmail or outlook."
        )

    normalised = normalise_email(address)
    ciphertext = cipher.encrypt(token)
    inserted = (
        Mailbox.insert(
            user=user,
            provider=provider,
            address=normalised,
            token=ciphertext,
            created_at=utcnow(),
        )
        .on_conflict_ignore()
        .as_rowcount()
        .execute()
    )
    mailbox = Mailbox.get(
        (Mailbox.user == user)
        & (Mailbox.provider == provider)
        & (Mailbox.address == normalised)
    )
    if not inserted:
        Mailbox.update(
            token=ciphertext, state="active", last_error="", reconnect_notified_at=None
        ).where(Mailbox.id == mailbox.id).execute()
        mailbox = Mailbox.get_by_id(mailbox.id)

    logger.info("Connected %s mailbox %s of user %s.", provider, mailbox.id, user.id)
    return mailbox, inserted == 1


def load_token(mailbox: Mailbox, cipher: TokenCipher) -> OAuthToken:
    """Decrypt the stored token of ``mailbox``.

    Raises:
      TokenDecryptionFailed: When no configured key decrypts it.
    """
    return cipher.decrypt(mailbox.token, account=str(mailbox.id))


def store_token(mailbox_id: int, token: OAuthToken, cipher: TokenCipher) -> None:
    """Encrypt a refreshed ``token`` and store it on mailbox ``mailbox_id``."""
    Mailbox.update(token=cipher.encrypt(token)).where(
        Mailbox.id == mailbox_id
    ).execute()
    logger.info("Stored the refreshed token of mailbox %s.", mailbox_id)


def active_mailbox_ids(provider: str) -> list[int]:
    """Return the ids of the active mailboxes of ``provider``, oldest first."""
    query = (
        Mailbox.select(Mailbox.id)
        .where((Mailbox.provider == provider) & (Mailbox.state == "active"))
        .order_by(Mailbox.id)
    )
    return [mailbox.id for mailbox in query]


def list_mailboxes(user_email: str | None = None) -> list[MailboxView]:
    """Return the mailboxes of one user, or of every user, by user then id.

    Parameters:
      user_email: The owner's address, or ``None`` for every user.
    """
    query = Mailbox.select(Mailbox, User).join(User).order_by(User.email, Mailbox.id)
    if user_email is not None:
        query = query.where(User.email == normalise_email(user_email))

    return [
        MailboxView(
            id=mailbox.id,
            user_email=mailbox.user.email,
            provider=mailbox.provider,
            address=mailbox.address,
            state=mailbox.state,
            last_sync_at=mailbox.last_sync_at,
            last_error=mailbox.last_error,
        )
        for mailbox in query
    ]


def record_sync_success(mailbox_id: int, now: datetime | None = None) -> None:
    """Record a finished sync of ``mailbox_id`` and clear its last error."""
    Mailbox.update(last_sync_at=now or utcnow(), last_error="").where(
        Mailbox.id == mailbox_id
    ).execute()


def record_sync_failure(mailbox_id: int, error: BaseException) -> None:
    """Record why the latest sync of ``mailbox_id`` failed, keeping its state."""
    text = f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]
    Mailbox.update(last_error=text).where(Mailbox.id == mailbox_id).execute()


def mark_needs_reconnect(
    mailbox_id: int, error: TokenRevoked, now: datetime | None = None
) -> OutboxItem | None:
    """Stop syncing a mailbox whose grant is gone and ask its user to reconnect it.

    The notification's outbox key names the mailbox and the date of the failed
    refresh, so repeated calls on one day queue one notification. Only the call
    that moves the mailbox out of ``active`` queues it, so later runs that find
    the mailbox in ``needs_reconnect`` add nothing.

    Parameters:
      mailbox_id: The mailbox whose refresh failed for good.
      error: The refresh failure.
      now: The time of the failure. Defaults to now.

    Returns:
      The queued notification, or ``None`` when another call already moved the
      mailbox out of ``active``.
    """
    moment = now or utcnow()
    text = f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]
    changed = (
        Mailbox.update(state="needs_reconnect", last_error=text)
        .where((Mailbox.id == mailbox_id) & (Mailbox.state == "active"))
        .execute()
    )
    if changed != 1:
        return None

    mailbox = Mailbox.get_by_id(mailbox_id)
    key = f"mailbox-reconnect:{mailbox_id}:{moment.date().isoformat()}"
    item = add_notification(
        mailbox.user,
        key,
        RECONNECT_KIND,
        f"Reconnect your {_provider_name(mailbox.provider)} mailbox",
        f"Wallie can no longer read {mailbox.address} because access was revoked "
        "or expired. Connect the mailbox again to resume syncing.",
        {
            "mailbox_id": mailbox_id,
            "provider": mailbox.provider,
            "reason": error.reason,
        },
    )
    Mailbox.update(reconnect_notified_at=moment).where(
        Mailbox.id == mailbox_id
    ).execute()
    logger.warning(
        "Mailbox %s needs to be connected again (%s), so outbox item %s was queued.",
        mailbox_id,
        error.reason,
        item.id,
    )
    return item


def _provider_name(provider: str) -> str:
    return {"gmail": "Gmail", "outlook": "Outlook"}.get(provider, provider)


# Cursors.


def _cursor_account(mailbox: Mailbox, scope: str) -> str:
    return f"{mailbox.address}#{scope}" if scope else mailbox.address


def get_cursor(mailbox: Mailbox, scope: str = "") -> str | None:
    """Return the stored cursor of ``mailbox``, or ``None`` before the first sync.

    Parameters:
      mailbox: The mailbox.
      scope: The Outlook folder, or empty for the Gmail history id.
    """
    state = SyncState.get_or_none(
        (SyncState.user == mailbox.user_id)
        & (SyncState.provider == mailbox.provider)
        & (SyncState.account == _cursor_account(mailbox, scope))
    )
    if state is None or not state.cursor:
        return None

    return state.cursor


def set_cursor(mailbox: Mailbox, scope: str, cursor: str) -> None:
    """Store the cursor that the next sync of ``mailbox`` (and ``scope``) starts at.

    Callers store it only after the messages it covers are stored, so a sync that
    stops half-way starts again from the previous cursor.
    """
    now = utcnow()
    SyncState.insert(
        user=mailbox.user_id,
        provider=mailbox.provider,
        account=_cursor_account(mailbox, scope),
        cursor=cursor,
        status="idle",
        error="",
        last_synced_at=now,
    ).on_conflict(
        conflict_target=[SyncState.user, SyncState.provider, SyncState.account],
        update={
            SyncState.cursor: cursor,
            SyncState.status: "idle",
            SyncState.error: "",
            SyncState.last_synced_at: now,
        },
    ).execute()


def clear_cursor(mailbox: Mailbox, scope: str = "") -> None:
    """Forget the cursor of ``mailbox`` (and ``scope``), so the next round is full."""
    SyncState.update(cursor="").where(
        (SyncState.user == mailbox.user_id)
        & (SyncState.provider == mailbox.provider)
        & (SyncState.account == _cursor_account(mailbox, scope))
    ).execute()


# Token files.


def read_token_file(
    path: Path, provider: str, now: datetime | None = None
) -> OAuthToken:
    """Read a token obtained elsewhere from a JSON file.

    The file is a JSON object as the providers' libraries write it:
    ``access_token`` (or google-auth's ``token``), ``refresh_token``,
    ``client_id``, ``client_secret`` (required for Gmail), an optional
    ``token_uri``, an optional expiry as ``expires_at`` (ISO 8601 or Unix
    seconds), ``expiry`` (ISO 8601, naive means UTC), ``expires_on`` (Unix
    seconds) or ``expires_in`` (seconds from now), and optional ``scope``
    (space-separated) or ``scopes`` (a list).

    Parameters:
      path: The file.
      provider: ``gmail`` or ``outlook``, which decides the required keys.
      now: The time ``expires_in`` counts from. Defaults to now.

    Raises:
      TokenFileInvalid: When the file is missing, is not a JSON object or lacks
        a required key. The message names the file and the missing keys.
    """
    data = _load_token_json(path)
    access_token = next((data[key] for key in ACCESS_TOKEN_KEYS if data.get(key)), None)
    required = ["refresh_token", "client_id"]
    if provider == "gmail":
        required.append("client_secret")

    missing = [key for key in required if not data.get(key)]
    if access_token is None:
        missing.insert(0, "access_token")

    if missing:
        raise TokenFileInvalid(
            f"Token file {path} is missing {', '.join(missing)}. Expected a JSON "
            "object with access_token, refresh_token, client_id, client_secret "
            "(Gmail), token_uri and expires_at or expiry."
        )

    return OAuthToken(
        access_token=str(access_token),
        refresh_token=str(data["refresh_token"]),
        expires_at=_expiry(data, path, now or utcnow()),
        scopes=_scopes(data),
        client_id=str(data["client_id"]),
        client_secret=str(data["client_secret"]) if data.get("client_secret") else None,
        token_uri=str(data["token_uri"]) if data.get("token_uri") else None,
    )


def token_file_address(path: Path) -> str | None:
    """Return the mailbox address a token file names, or ``None``.

    Some tools write the account next to the token (``email``, ``account``).
    """
    data = _load_token_json(path)
    for key in ("email", "account", "address"):
        value = data.get(key)
        if isinstance(value, str) and "@" in value:
            return value

    return None


def _load_token_json(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenFileInvalid(f"Token file {path} was not found.") from None
    except OSError as error:
        raise TokenFileInvalid(f"Token file {path} cannot be read: {error}.") from None

    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise TokenFileInvalid(
            f"Token file {path} is not valid JSON: {error}."
        ) from None

    if not isinstance(data, dict):
        raise TokenFileInvalid(f"Token file {path} must contain a JSON object.")

    return data


def _expiry(data: Mapping[str, Any], path: Path, now: datetime) -> datetime | None:
    for key in ("expires_at", "expiry", "expires_on"):
        value = data.get(key)
        if value in (None, ""):
            continue

        moment = _parse_moment(value)
        if moment is None:
            raise TokenFileInvalid(
                f"Token file {path} has an invalid {key} {value!r}: expected ISO 8601 "
                "or Unix seconds."
            )

        return moment

    expires_in = data.get("expires_in")
    if isinstance(expires_in, int | float) or str(expires_in or "").isdigit():
        return now + timedelta(seconds=float(expires_in))

    return None


def _parse_moment(value: Any) -> datetime | None:
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(float(value), UTC)

    if not isinstance(value, str):
        return None

    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)

    return moment.astimezone(UTC)


def _scopes(data: Mapping[str, Any]) -> tuple[str, ...]:
    scopes = data.get("scopes", data.get("scope"))
    if isinstance(scopes, str):
        return tuple(scopes.split())

    if isinstance(scopes, list):
        return tuple(str(scope) for scope in scopes)

    return ()
