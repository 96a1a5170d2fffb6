"""Outlook client: Microsoft Graph message delta per mail folder, through O365.

O365 2.x has no delta query support, so the client builds the first
``/me/mailFolders/{folder}/messages/delta`` URL itself and then follows
``@odata.nextLink`` until Graph returns an ``@odata.deltaLink``, which the caller
stores and passes back for the next round. Requests go through
``O365.Connection.get`` so O365 owns the session, proxy and TLS settings.

O365 is configured so that this module, not the library, decides about errors:

* ``request_retries=0``: O365 otherwise mounts a urllib3 ``Retry`` adapter that
  retries 429 and 5xx responses itself and sleeps for ``Retry-After``.
* ``raise_http_errors=False``: error responses come back as responses, so the
  status and the Graph error code can be read.
* ``requests_delay=0``: O365 otherwise sleeps 200 ms between requests.
  Concurrency is limited by a per-mailbox semaphore instead.
* A token backend that never reports the access token as expired, so O365
  does not start its own MSAL refresh. This module refreshes the token itself,
  shortly before expiry and once after a 401 ``InvalidAuthenticationToken``.

Tests point O365 at a local server with ``graph_url`` (it replaces
``MSGraphProtocol``'s ``https://graph.microsoft.com/`` for ``protocol_url`` and
``service_url``) and ``authority_url`` (the token endpoint host). The client only
follows ``nextLink`` and ``deltaLink`` URLs on the ``graph_url`` host, so a stored
link can never send the bearer token elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from O365 import Account
from O365.connection import MSGraphProtocol
from O365.utils.token import BaseTokenBackend

from wallie.logging import get_logger

from .errors import (
    DeltaExpired,
    MailProviderError,
    ProviderRateLimited,
    ProviderRequestFailed,
    ProviderUnavailable,
    TokenRevoked,
)
from .html_text import html_to_text
from .message import Address, MailMessage
from .ratelimit import (
    DEFAULT_BACKOFF_MS,
    Clock,
    RequestCounter,
    parse_retry_after_header,
    utc_now,
)
from .tokens import (
    MICROSOFT_AUTHORITY_URL,
    OAuthToken,
    microsoft_token_url,
    refresh_microsoft_token,
)

logger = get_logger(__name__)

PROVIDER = "outlook"

#: Microsoft Graph root, as O365's MSGraphProtocol uses it.
GRAPH_URL = "https://graph.microsoft.com/"

#: Folders synced by default: well-known names that Graph accepts in place of ids.
DEFAULT_FOLDERS = ("inbox", "sentitems")

#: Messages per delta page requested with ``Prefer: odata.maxpagesize``.
#: Graph may return fewer.
DEFAULT_PAGE_SIZE = 50

#: Concurrent Graph requests per mailbox in this process. Graph's Outlook service
#: limits allow 4 concurrent requests per app and mailbox.
#: NOTE: the limit applies inside one process only, and the foundation will add a
#: Redis-backed limit shared by all worker processes.
MAX_CONCURRENT_REQUESTS = 4

#: Timeout of one Graph or token request, in seconds.
REQUEST_TIMEOUT_S = 30

#: Message properties requested from the delta query.
SELECT_FIELDS = (
    "id",
    "conversationId",
    "internetMessageId",
    "subject",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "receivedDateTime",
    "sentDateTime",
    "isRead",
    "isDraft",
    "hasAttachments",
    "body",
)

#: Graph error codes of a 410 response that require a new delta round.
RESYNC_CODES = frozenset({"SyncStateNotFound", "resyncRequired", "SyncStateInvalid"})

_semaphores: dict[str, threading.BoundedSemaphore] = {}
_semaphores_lock = threading.Lock()


def mailbox_semaphore(
    account_id: str, limit: int = MAX_CONCURRENT_REQUESTS
) -> threading.BoundedSemaphore:
    """Return the process-wide semaphore that limits requests to one mailbox.

    Every client built for ``account_id`` in this process shares it. The
    ``limit`` of the first call for an account wins.
    """
    with _semaphores_lock:
        semaphore = _semaphores.get(account_id)
        if semaphore is None:
            semaphore = threading.BoundedSemaphore(limit)
            _semaphores[account_id] = semaphore

        return semaphore


def parse_bool(value: Any) -> bool | None:
    """Parse a Graph boolean leniently.

    Graph sends JSON booleans, but its documentation prints some as strings
    (``"isRead": "true"``), so ``"true"``/``"false"`` in any case are accepted.

    Returns:
      The boolean, or ``None`` when ``value`` is missing or not a boolean.
    """
    if isinstance(value, bool):
        return value

    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False

    return None


def parse_graph_datetime(value: Any) -> datetime | None:
    """Parse a Graph ``DateTimeOffset`` such as ``2018-09-09T03:15:08Z``."""
    if not isinstance(value, str) or not value:
        return None

    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _address(recipient: Any) -> Address | None:
    if not isinstance(recipient, Mapping):
        return None

    email = recipient.get("emailAddress") or {}
    address = str(email.get("address") or "")
    if not address:
        return None

    return Address(name=str(email.get("name") or ""), email=address)


@dataclass(frozen=True)
class GraphMessage:
    """Message state from a Graph delta page.

    Delta pages carry only the ``$select`` properties, so every field but the id
    may be missing (``None``, empty).

    Attributes:
      external_id: The Graph message id.
      folder: The folder whose delta returned the message.
      conversation_id: The Graph conversation id.
      subject: The subject, empty when not selected.
      sender: The From address, else the Sender address.
      recipients: To addresses followed by Cc addresses.
      received_at: ``receivedDateTime``, aware.
      sent_at: ``sentDateTime``, aware.
      is_read: Parsed leniently, see :func:`parse_bool`.
      is_draft: Parsed leniently.
      has_attachments: Parsed leniently.
      text: The body as plain text. HTML bodies are converted.
      html_present: Whether the body was HTML.
      internet_message_id: The Message-ID header.
      is_outbound: Whether the message is in Sent Items or from the owner.
    """

    external_id: str
    folder: str
    conversation_id: str | None
    subject: str
    sender: Address | None
    recipients: tuple[Address, ...]
    received_at: datetime | None
    sent_at: datetime | None
    is_read: bool | None
    is_draft: bool | None
    has_attachments: bool | None
    text: str
    html_present: bool
    internet_message_id: str | None
    is_outbound: bool

    def to_mail_message(self) -> MailMessage:
        """Convert to the provider-neutral form.

        Attachment metadata is empty because the delta query returns only
        ``hasAttachments``.

        Raises:
          ValueError: When the delta page carried neither date.
        """
        moment = self.received_at or self.sent_at
        if moment is None:
            raise ValueError(f"Graph message {self.external_id} has no date.")

        # TODO: fetch /messages/{id}/attachments for messages with attachments.
        return MailMessage(
            external_id=self.external_id,
            thread_id=self.conversation_id or self.external_id,
            sent_at=moment.astimezone(UTC),
            sender=self.sender,
            recipients=self.recipients,
            subject=self.subject,
            text=self.text,
            html_present=self.html_present,
            attachments=(),
            labels=frozenset({self.folder}),
            is_outbound=self.is_outbound,
            rfc822_message_id=self.internet_message_id,
            header_date=self.sent_at,
        )


def parse_graph_message(
    item: Mapping[str, Any], *, folder: str, owner_addresses: Iterable[str] = ()
) -> GraphMessage:
    """Parse one message entry of a Graph delta page or message resource.

    Parameters:
      item: The JSON object of the message.
      folder: The folder whose delta returned it.
      owner_addresses: The mailbox owner's addresses, to mark outbound mail.

    Raises:
      KeyError: When ``id`` is missing.
    """
    sender = _address(item.get("from")) or _address(item.get("sender"))
    recipients = [
        *(item.get("toRecipients") or []),
        *(item.get("ccRecipients") or []),
    ]
    body = item.get("body") or {}
    content = str(body.get("content") or "")
    html_present = str(body.get("contentType", "")).lower() == "html"
    text = html_to_text(content) if html_present else content.replace("\r\n", "\n")
    owners = {address.lower() for address in owner_addresses}
    from_owner = sender is not None and sender.email.lower() in owners

    return GraphMessage(
        external_id=str(item["id"]),
        folder=folder,
        conversation_id=item.get("conversationId"),
        subject=str(item.get("subject") or ""),
        sender=sender,
        recipients=tuple(a for a in map(_address, recipients) if a is not None),
        received_at=parse_graph_datetime(item.get("receivedDateTime")),
        sent_at=parse_graph_datetime(item.get("sentDateTime")),
        is_read=parse_bool(item.get("isRead")),
        is_draft=parse_bool(item.get("isDraft")),
        has_attachments=parse_bool(item.get("hasAttachments")),
        text=text.strip(),
        html_present=html_present,
        internet_message_id=item.get("internetMessageId"),
        is_outbound=folder.lower() == "sentitems" or from_owner,
    )


@dataclass(frozen=True)
class FolderDelta:
    """Changes of one mail folder since the previous delta round.

    Attributes:
      folder: The folder name or id.
      delta_link: The ``@odata.deltaLink`` to pass to the next round.
      updated: Messages added to the folder or changed in it.
      deleted_ids: Messages deleted from the mailbox (``@removed`` reason
        ``deleted``). Remove them everywhere.
      moved_out_ids: Messages that left the folder's scope (``@removed`` reason
        ``changed``), usually moved to another folder. The message may still
        exist: drop it from this folder only, and expect it in another folder's
        delta if that folder is synced.
      pages: Number of pages read.
    """

    folder: str
    delta_link: str
    updated: tuple[GraphMessage, ...]
    deleted_ids: tuple[str, ...]
    moved_out_ids: tuple[str, ...]
    pages: int


class _ExternalTokenBackend(BaseTokenBackend):
    """O365 token backend for a token that this module stores and refreshes.

    It stores nothing, and it never reports the token as expired, so O365 returns
    401 responses to the caller instead of starting an MSAL refresh.
    """

    def load_token(self) -> bool:
        return True

    def save_token(self, force: bool = False) -> bool:
        return True

    def token_is_expired(self, *, username: str | None = None) -> bool:
        return False


class OutlookClient:
    """Graph client for one Outlook mailbox.

    Parameters:
      account_id: The Wallie account id, used in errors, log lines and as the
        key of the concurrency semaphore.
      token: The stored token.
      client_id: The app registration's client id.
      client_secret: The client secret, or ``None`` for a public client.
      on_token_refreshed: Called with the new token after every refresh, so the
        caller can encrypt and store it.
      owner_addresses: The mailbox owner's addresses, to mark outbound mail.
      graph_url: Graph root URL; tests pass a local server. Ends with ``/``.
      authority_url: Azure AD host for the token endpoint; tests pass a local
        server.
      tenant: The Azure AD tenant of the token endpoint.
      page_size: Messages per delta page (``Prefer: odata.maxpagesize``).
      max_concurrent_requests: Concurrent requests per mailbox.
      default_backoff_ms: Wait reported for a 429 without ``Retry-After``.
      counter: Counter of HTTP requests. A new one is made when omitted.
      clock: Function that returns the current aware UTC time.
    """

    def __init__(
        self,
        *,
        account_id: str,
        token: OAuthToken,
        client_id: str,
        client_secret: str | None,
        on_token_refreshed: Callable[[OAuthToken], None] | None = None,
        owner_addresses: Iterable[str] = (),
        graph_url: str = GRAPH_URL,
        authority_url: str = MICROSOFT_AUTHORITY_URL,
        tenant: str = "common",
        page_size: int = DEFAULT_PAGE_SIZE,
        max_concurrent_requests: int = MAX_CONCURRENT_REQUESTS,
        default_backoff_ms: int = DEFAULT_BACKOFF_MS,
        counter: RequestCounter | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.account_id = account_id
        self.counter = counter or RequestCounter()
        self.owner_addresses = tuple(owner_addresses)
        self.page_size = page_size
        self.default_backoff_ms = default_backoff_ms
        self._token = token
        self._client_id = client_id
        self._client_secret = client_secret
        self._on_token_refreshed = on_token_refreshed
        self._token_url = microsoft_token_url(tenant, authority_url)
        self._clock = clock
        self._refresh_lock = threading.Lock()
        self._semaphore = mailbox_semaphore(account_id, max_concurrent_requests)

        protocol = MSGraphProtocol(api_version="v1.0", timezone="UTC")
        protocol.protocol_url = graph_url
        protocol.service_url = f"{graph_url}{protocol.api_version}/"
        self._graph_origin = _origin(graph_url)
        credentials = (client_id, client_secret or "")
        self.account = Account(
            credentials,
            protocol=protocol,
            auth_flow_type="authorization" if client_secret else "public",
            token_backend=_ExternalTokenBackend(),
            tenant_id=tenant,
            request_retries=0,
            raise_http_errors=False,
            requests_delay=0,
            timeout=REQUEST_TIMEOUT_S,
        )
        self.connection = self.account.con
        self.connection.session = self.connection.get_session(load_token=False)
        self.connection.update_session_auth_header(access_token=token.access_token)

    @property
    def token(self) -> OAuthToken:
        """The current token, refreshed by the client when needed."""
        return self._token

    def delta_url(self, folder: str) -> str:
        """Return the first delta URL of ``folder``, without query parameters."""
        service_url = self.account.protocol.service_url
        return f"{service_url}me/mailFolders/{folder}/messages/delta"

    # Tokens.

    def _refresh(self, stale_access_token: str) -> None:
        """Refresh the token unless another thread already replaced it."""
        with self._refresh_lock:
            if self._token.access_token != stale_access_token:
                return

            self.counter.add("token")
            self._token = refresh_microsoft_token(
                self.connection,
                self._token,
                client_id=self._client_id,
                client_secret=self._client_secret,
                token_url=self._token_url,
                account=self.account_id,
                clock=self._clock,
            )
            self.connection.update_session_auth_header(
                access_token=self._token.access_token
            )
            if self._on_token_refreshed is not None:
                self._on_token_refreshed(self._token)

    # Requests.

    def _check_link(self, url: str) -> None:
        if _origin(url) != self._graph_origin:
            raise ValueError(
                f"Refusing to follow a Graph link to {_origin(url)}: the client is "
                f"configured for {self._graph_origin}."
            )

    def _send(self, url: str, params: Mapping[str, str] | None) -> requests.Response:
        headers = {"Prefer": f"odata.maxpagesize={self.page_size}"}
        self.counter.add("delta")
        try:
            with self._semaphore:
                return self.connection.get(url, params=params, headers=headers)
        except requests.RequestException as error:
            raise ProviderUnavailable(
                f"Graph request for account {self.account_id} failed: "
                f"{type(error).__name__}.",
                provider=PROVIDER,
                account=self.account_id,
            ) from error

    def _get_page(
        self, url: str, params: Mapping[str, str] | None, folder: str
    ) -> dict[str, Any]:
        """GET one delta page, refreshing the token once after a 401."""
        self._check_link(url)
        access_token = self._token.access_token
        if self._token.is_expired(self._clock()):
            self._refresh(access_token)

        response = self._send(url, params)
        if response.status_code == 401 and _graph_error(response)[0] in (
            "InvalidAuthenticationToken",
            "",
        ):
            logger.info(
                "Graph rejected the access token of account %s; refreshing it once.",
                self.account_id,
            )
            self._refresh(access_token)
            response = self._send(url, params)

        if response.status_code == 200:
            return response.json()

        raise self._translate(response, folder)

    def _translate(self, response: requests.Response, folder: str) -> MailProviderError:
        status = response.status_code
        code, message = _graph_error(response)
        where = f"Graph delta of folder {folder} for account {self.account_id}"

        if status == 410 or code in RESYNC_CODES:
            logger.warning(
                "Graph delta link of folder %s expired for account %s (%s).",
                folder,
                self.account_id,
                code,
            )
            return DeltaExpired(
                f"{where} returned {status} {code}; run the folder's delta again "
                "from the start.",
                provider=PROVIDER,
                account=self.account_id,
                folder=folder,
            )

        if status == 429:
            hinted = parse_retry_after_header(
                response.headers.get("Retry-After"), now=self._clock()
            )
            wait_ms = self.default_backoff_ms if hinted is None else hinted
            return ProviderRateLimited(
                f"{where} was throttled ({code}); retry in {wait_ms} ms.",
                provider=PROVIDER,
                account=self.account_id,
                retry_after_ms=wait_ms,
                hinted=hinted is not None,
            )

        if status == 401:
            return TokenRevoked(
                f"{where} was rejected with 401 {code} after a token refresh; "
                "the user must connect the mailbox again.",
                provider=PROVIDER,
                account=self.account_id,
                reason=code or "unauthorized",
            )

        if status >= 500:
            return ProviderUnavailable(
                f"{where} failed with {status} {code}: {message}",
                provider=PROVIDER,
                account=self.account_id,
            )

        return ProviderRequestFailed(
            f"{where} failed with {status} {code}: {message}",
            provider=PROVIDER,
            account=self.account_id,
            status=status,
        )

    # Delta.

    def sync_folder(self, folder: str, delta_link: str | None = None) -> FolderDelta:
        """Run one delta round for ``folder``, following every ``nextLink``.

        Parameters:
          folder: A well-known folder name (``inbox``, ``sentitems``) or an id.
          delta_link: The ``deltaLink`` of the previous round, or ``None`` for
            the first round, which returns every message in the folder.

        Returns:
          The changes and the ``deltaLink`` to store.

        Raises:
          DeltaExpired: When Graph returns 410. Call again without ``delta_link``.
          ProviderRateLimited: When Graph returns 429.
          TokenRevoked: When the token cannot be refreshed or stays rejected.
          MailProviderError: When a page request fails otherwise.
          ValueError: When a link points to a host other than ``graph_url``.
        """
        collector = _DeltaCollector(folder, self.owner_addresses)
        if delta_link is None:
            url = self.delta_url(folder)
            params: dict[str, str] | None = {"$select": ",".join(SELECT_FIELDS)}
        else:
            url, params = delta_link, None

        while True:
            page = self._get_page(url, params, folder)
            collector.add_page(page)
            next_link = page.get("@odata.nextLink")
            if next_link:
                url, params = str(next_link), None
                continue

            new_delta_link = page.get("@odata.deltaLink")
            if not new_delta_link:
                raise ProviderRequestFailed(
                    f"Graph delta page of folder {folder} for account "
                    f"{self.account_id} has neither a nextLink nor a deltaLink.",
                    provider=PROVIDER,
                    account=self.account_id,
                    status=200,
                )

            result = collector.result(str(new_delta_link))
            logger.info(
                "Graph delta of folder %s for account %s: %d updated, %d deleted, "
                "%d moved out, %d pages.",
                folder,
                self.account_id,
                len(result.updated),
                len(result.deleted_ids),
                len(result.moved_out_ids),
                result.pages,
            )
            return result

    def sync_folders(
        self,
        delta_links: Mapping[str, str | None] | None = None,
        folders: Sequence[str] = DEFAULT_FOLDERS,
    ) -> dict[str, FolderDelta]:
        """Run one delta round for several folders at once.

        The folders run in parallel threads. The mailbox semaphore keeps the
        number of requests in flight at ``max_concurrent_requests``.

        Parameters:
          delta_links: Stored delta links by folder. Missing folders start over.
          folders: The folders to sync.

        Returns:
          The changes by folder.

        Raises:
          MailProviderError: The first error of any folder, after all folders
            finished. :class:`DeltaExpired` names its folder.
        """
        links = delta_links or {}
        with ThreadPoolExecutor(max_workers=len(folders) or 1) as pool:
            futures = {
                folder: pool.submit(self.sync_folder, folder, links.get(folder))
                for folder in folders
            }

        return {folder: future.result() for folder, future in futures.items()}


class _DeltaCollector:
    """Folds delta pages into one :class:`FolderDelta`."""

    def __init__(self, folder: str, owner_addresses: Sequence[str]) -> None:
        self.folder = folder
        self.owner_addresses = owner_addresses
        self.updated: dict[str, GraphMessage] = {}
        self.deleted: dict[str, None] = {}
        self.moved_out: dict[str, None] = {}
        self.pages = 0

    def add_page(self, page: Mapping[str, Any]) -> None:
        self.pages += 1
        for item in page.get("value", []):
            self._add_item(item)

    def _add_item(self, item: Mapping[str, Any]) -> None:
        message_id = str(item["id"])
        removed = item.get("@removed")
        if removed is None:
            self.updated[message_id] = parse_graph_message(
                item, folder=self.folder, owner_addresses=self.owner_addresses
            )
            self.deleted.pop(message_id, None)
            self.moved_out.pop(message_id, None)
            return

        self.updated.pop(message_id, None)
        reason = ""
        if isinstance(removed, Mapping):
            reason = str(removed.get("reason", "")).lower()

        if reason == "deleted":
            self.deleted[message_id] = None
        else:
            # "changed" means the message left the folder's scope, usually by a
            # move; an unknown reason is treated the same, as the safer choice.
            self.moved_out[message_id] = None

    def result(self, delta_link: str) -> FolderDelta:
        return FolderDelta(
            folder=self.folder,
            delta_link=delta_link,
            updated=tuple(self.updated.values()),
            deleted_ids=tuple(self.deleted),
            moved_out_ids=tuple(self.moved_out),
            pages=self.pages,
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _graph_error(response: requests.Response) -> tuple[str, str]:
    """Return the ``error.code`` and ``error.message`` of a Graph error body."""
    try:
        body = response.json()
    except ValueError:
        return "", ""

    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, Mapping):
        return "", ""

    return str(error.get("code", "")), str(error.get("message", ""))
