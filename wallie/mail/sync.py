"""Sync of connected Gmail and Outlook mailboxes into Wallie's storage.

:func:`sync_gmail` and :func:`sync_outlook` run one sync round of one mailbox.
Threads become conversations (channel ``gmail`` or ``outlook``, external id the
thread or conversation id), senders and recipients become contacts matched by
address only, and messages are unique by their provider id, so a round that runs
again stores nothing twice.

Each round stores its messages first and its cursor last. A round that stops
half-way (a crash, a time limit, a rate limit) leaves the previous cursor, and
the next round lists the same changes again. It fetches only the messages not
stored yet, so it ends with the same stored messages as an uninterrupted round.

Deleted mail is kept as a row with ``is_deleted`` set, not removed. Reminders,
entities and lead scores point at the message they came from, and a kept row
also stops a replayed change from adding the message again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httplib2
from google.oauth2.credentials import Credentials

from wallie.db.fields import utcnow
from wallie.db.models import Attachment as AttachmentRow
from wallie.db.models import Contact, Mailbox, Message, User
from wallie.errors import WallieError
from wallie.logging import get_logger
from wallie.settings import Settings, get_settings
from wallie.storage import (
    add_participants,
    find_or_create_contact,
    insert_messages,
    normalise_email,
    touch_conversation,
    upsert_conversation,
)

from .errors import DeltaExpired, HistoryExpired, ProviderRateLimited
from .gmail import GmailClient, LabelChange
from .mailboxes import (
    clear_cursor,
    get_mailbox,
    get_cursor,
    load_token,
    set_cursor,
    store_token,
)
from .message import Address, Attachment, MailMessage
from .outlook import (
    DEFAULT_FOLDERS,
    DEFAULT_PAGE_SIZE,
    GRAPH_URL,
    FolderDelta,
    OutlookClient,
)
from .ratelimit import Clock, utc_now
from .tokens import (
    GOOGLE_TOKEN_URI,
    MICROSOFT_AUTHORITY_URL,
    OAuthToken,
    TokenCipher,
    google_credentials,
    google_http,
    load_token_cipher,
    refresh_google_token,
    token_from_google,
)

logger = get_logger(__name__)

#: Message ids fetched and stored together. Each chunk is stored before the next
#: is fetched, so a sync that stops loses at most one chunk of work. Four Gmail
#: batch requests of 50.
STORE_CHUNK = 200

#: Gmail labels whose messages are not stored: drafts are not sent yet and spam
#: is not a conversation.
SKIPPED_GMAIL_LABELS = frozenset({"DRAFT", "SPAM"})

#: Timeout of one Gmail API request, in seconds.
GMAIL_TIMEOUT_S = 60

HttpFactory = Callable[[Credentials], Any]


class MailboxNotActive(WallieError):
    """Raised when a sync is asked for a mailbox that is not ``active``."""


@dataclass(frozen=True)
class SyncResult:
    """Counts and new conversations of one sync round of one mailbox.

    Attributes:
      mailbox_id: The mailbox.
      provider: ``gmail`` or ``outlook``.
      full_sync: Whether the round listed the mailbox (or an Outlook folder)
        from the start, because there was no cursor or it had expired.
      fetched: Messages the provider returned.
      stored: Messages stored for the first time.
      deleted: Stored messages marked deleted.
      updated: Stored messages whose labels or folders changed.
      skipped: Messages not stored: drafts, spam, or entries without a date.
      conversation_ids: Conversations that got new messages, sorted.
      requests: HTTP requests made to the provider.
    """

    mailbox_id: int
    provider: str
    full_sync: bool
    fetched: int
    stored: int
    deleted: int
    updated: int
    skipped: int
    conversation_ids: tuple[int, ...]
    requests: int


@dataclass
class _Tally:
    full_sync: bool = False
    fetched: int = 0
    stored: int = 0
    deleted: int = 0
    updated: int = 0
    skipped: int = 0
    conversation_ids: set[int] = field(default_factory=set)

    def result(self, mailbox: Mailbox, requests: int) -> SyncResult:
        return SyncResult(
            mailbox_id=mailbox.id,
            provider=mailbox.provider,
            full_sync=self.full_sync,
            fetched=self.fetched,
            stored=self.stored,
            deleted=self.deleted,
            updated=self.updated,
            skipped=self.skipped,
            conversation_ids=tuple(sorted(self.conversation_ids)),
            requests=requests,
        )


class MailStore:
    """Writer of one mailbox's messages through :mod:`wallie.storage`.

    Parameters:
      mailbox: The mailbox whose messages are stored.
      channel: ``gmail`` or ``outlook``.
      owner_addresses: The owner's addresses. They map to the owner's own
        contact and never become participants.
      tally: Counts to add to.
    """

    def __init__(
        self,
        mailbox: Mailbox,
        channel: str,
        owner_addresses: Iterable[str],
        tally: _Tally,
    ) -> None:
        self.mailbox_id = mailbox.id
        self.user: User = mailbox.user
        self.channel = channel
        self.owners = {normalise_email(address) for address in owner_addresses}
        self.tally = tally
        self._contacts: dict[str, Contact] = {}

    def _messages(self, external_ids: Iterable[str]) -> Any:
        return Message.select().where(
            (Message.user == self.user)
            & (Message.channel == self.channel)
            & Message.external_id.in_(list(external_ids))
        )

    def known_ids(self, external_ids: Sequence[str]) -> set[str]:
        """Return which of ``external_ids`` are stored already."""
        known: set[str] = set()
        for start in range(0, len(external_ids), STORE_CHUNK):
            chunk = external_ids[start : start + STORE_CHUNK]
            query = self._messages(chunk).select(Message.external_id)
            known.update(row.external_id for row in query)

        return known

    def unknown_ids(self, external_ids: Sequence[str]) -> list[str]:
        """Return ``external_ids`` without the stored ones, in order."""
        known = self.known_ids(external_ids)
        return [external_id for external_id in external_ids if external_id not in known]

    # Contacts.

    def _contact(self, address: Address) -> Contact:
        email = normalise_email(address.email)
        contact = self._contacts.get(email)
        if contact is None:
            contact = find_or_create_contact(
                self.user,
                name=address.name,
                email=email,
                is_self=email in self.owners,
                match_name=False,
            )
            self._contacts[email] = contact

        return contact

    def _counterparts(self, message: MailMessage) -> list[Contact]:
        addresses = [message.sender, *message.recipients]
        seen: dict[str, Contact] = {}
        for address in addresses:
            if address is None or not address.email:
                continue

            email = normalise_email(address.email)
            if email not in self.owners and email not in seen:
                seen[email] = self._contact(address)

        return list(seen.values())

    # Writes.

    def add(self, messages: Sequence[MailMessage]) -> None:
        """Store new messages with their conversations and contacts.

        Messages stored already are left as they are, because their changes
        arrive as label or folder updates.
        """
        known = self.known_ids([message.external_id for message in messages])
        rows: list[dict[str, Any]] = []
        touched: set[int] = set()
        for message in messages:
            if message.external_id in known:
                continue

            rows.append(self._row(message))
            touched.add(rows[-1]["conversation"])

        with Message._meta.database.atomic():
            self.tally.stored += insert_messages(rows)
            self._add_attachments([m for m in messages if m.external_id not in known])

        for conversation_id in touched:
            touch_conversation(conversation_id)

        self.tally.conversation_ids.update(touched)

    def _add_attachments(self, messages: Sequence[MailMessage]) -> None:
        """Store the attachment metadata of newly stored ``messages``.

        Runs in the transaction that stored the messages, so a sync killed
        between the two writes leaves neither, and the rerun stores both.
        The content stays at the provider; ``path`` stays empty.
        """
        with_files = {m.external_id: m.attachments for m in messages if m.attachments}
        if not with_files:
            return

        stored = self._messages(with_files).select(Message.id, Message.external_id)
        now = utcnow()
        rows = [
            {
                "user": self.user.id,
                "message": row.id,
                "kind": attachment_kind(attachment),
                "file_name": attachment.filename[:500],
                "content_type": attachment.mime_type[:200],
                "size_bytes": max(attachment.size, 0),
                "created_at": now,
            }
            for row in stored
            for attachment in with_files[row.external_id]
        ]
        for start in range(0, len(rows), 500):
            AttachmentRow.insert_many(rows[start : start + 500]).execute()

    def _row(self, message: MailMessage) -> dict[str, Any]:
        counterparts = self._counterparts(message)
        conversation = upsert_conversation(
            self.user,
            self.channel,
            message.thread_id,
            title=message.subject[:500],
            is_group=len(counterparts) > 1,
            contact=counterparts[0] if len(counterparts) == 1 else None,
        )
        add_participants(conversation, counterparts)
        sender = self._contact(message.sender) if message.sender else None
        return {
            "user": self.user.id,
            "channel": self.channel,
            "external_id": message.external_id,
            "conversation": conversation.id,
            "sender": sender.id if sender else None,
            "direction": "outbound" if message.is_outbound else "inbound",
            "sent_at": message.sent_at,
            "subject": message.subject[:1000],
            "body": message.text,
            "labels": sorted(message.labels),
        }

    def apply_label_changes(self, changes: Mapping[str, LabelChange]) -> None:
        """Apply net Gmail label changes to the stored messages they name.

        Adding and removing sets is idempotent, so a change read twice (a round
        that runs again) leaves the same labels.
        """
        for message in self._messages(changes):
            change = changes[message.external_id]
            labels = (set(message.labels) | change.added) - change.removed
            if labels != set(message.labels):
                self._set_labels(message, labels)

    def _set_labels(self, message: Message, labels: set[str]) -> None:
        Message.update(labels=sorted(labels)).where(Message.id == message.id).execute()
        self.tally.updated += 1

    def mark_deleted(self, external_ids: Sequence[str]) -> None:
        """Mark the stored messages among ``external_ids`` deleted."""
        for start in range(0, len(external_ids), STORE_CHUNK):
            chunk = list(external_ids[start : start + STORE_CHUNK])
            self.tally.deleted += (
                Message.update(is_deleted=True)
                .where(
                    (Message.user == self.user)
                    & (Message.channel == self.channel)
                    & Message.external_id.in_(chunk)
                    & (Message.is_deleted == False)  # noqa: E712 - SQL comparison
                )
                .execute()
            )

    def add_to_folder(self, external_ids: Sequence[str], folder: str) -> None:
        """Record that stored messages are in ``folder``, restoring hidden ones."""
        for message in self._messages(external_ids):
            labels = set(message.labels) | {folder}
            if labels != set(message.labels) or message.is_deleted:
                Message.update(labels=sorted(labels), is_deleted=False).where(
                    Message.id == message.id
                ).execute()
                self.tally.updated += 1

    def remove_from_folder(self, external_ids: Sequence[str], folder: str) -> None:
        """Record that messages left ``folder``, and hide those in no synced folder."""
        for message in self._messages(external_ids):
            labels = set(message.labels) - {folder}
            if labels:
                self._set_labels(message, labels)
                continue

            Message.update(labels=[], is_deleted=True).where(
                Message.id == message.id
            ).execute()
            self.tally.deleted += 1


def attachment_kind(attachment: Attachment) -> str:
    """Return the stored kind of a mail attachment from its MIME type.

    Examples:
      >>> attachment_kind(Attachment("a.pdf", "application/pdf", 10, None))
      'document'
      >>> attachment_kind(Attachment("v.ogg", "audio/ogg", 10, None))
      'audio'
    """
    major = attachment.mime_type.split("/", 1)[0].lower()
    return major if major in ("image", "audio", "video") else "document"


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _active_mailbox(mailbox_id: int, provider: str) -> Mailbox:
    mailbox = get_mailbox(mailbox_id)
    if mailbox.provider != provider:
        raise MailboxNotActive(
            f"Mailbox {mailbox_id} is a {mailbox.provider} mailbox, not {provider}."
        )

    if mailbox.state != "active":
        raise MailboxNotActive(
            f"Mailbox {mailbox_id} is {mailbox.state}, and only active mailboxes "
            "sync. Connect it again with wallie-cli mailbox connect."
        )

    return mailbox


# Gmail.


def default_gmail_http(credentials: Credentials) -> Any:
    """Return an httplib2 transport that signs requests with ``credentials``."""
    return google_http(credentials, httplib2.Http(timeout=GMAIL_TIMEOUT_S))


def sync_gmail(
    mailbox_id: int,
    *,
    settings: Settings | None = None,
    cipher: TokenCipher | None = None,
    http_factory: HttpFactory = default_gmail_http,
    api_endpoint: str | None = None,
    chunk_size: int = STORE_CHUNK,
    clock: Clock = utc_now,
) -> SyncResult:
    """Run one sync round of a Gmail mailbox.

    The first round lists the messages of the last ``WALLIE_MAIL_SYNC_WINDOW_DAYS``
    days and stores the history id read before the listing. Later rounds read
    ``history.list`` from the stored history id and apply added messages, label
    changes and deletions. When Gmail no longer has the history id (404), the
    round runs one full listing instead.

    Parameters:
      mailbox_id: The mailbox to sync.
      settings: The settings. Defaults to the process settings.
      cipher: The token cipher. Defaults to one built from ``settings``.
      http_factory: Builds the httplib2-style transport from the credentials.
        Tests pass a mock.
      api_endpoint: Gmail API base URL in place of Google's, for a test server.
      chunk_size: Message ids fetched and stored together.
      clock: Returns the current aware UTC time.

    Returns:
      The counts and the conversations that got new messages.

    Raises:
      MailboxNotActive: When the mailbox is not an active Gmail mailbox.
      TokenRevoked: When the grant is gone. The caller marks the mailbox.
      ProviderRateLimited: When Gmail rate-limits the round, with the hinted
        wait. The messages stored so far stay, and the cursor does not move.
      MailProviderError: When a request fails otherwise.
    """
    settings = settings or get_settings()
    cipher = cipher or load_token_cipher(settings=settings)
    mailbox = _active_mailbox(mailbox_id, "gmail")
    token = load_token(mailbox, cipher)
    credentials, token = _fresh_google_credentials(mailbox, token, cipher, clock)
    client = GmailClient(
        http_factory(credentials),
        account_id=str(mailbox.id),
        owner_addresses=[mailbox.address],
        api_endpoint=api_endpoint,
        clock=clock,
    )
    tally = _Tally()
    store = MailStore(mailbox, "gmail", [mailbox.address], tally)
    try:
        _run_gmail_round(mailbox, client, store, settings, chunk_size)
    finally:
        _store_google_refresh(mailbox, credentials, token, cipher)

    result = tally.result(mailbox, client.counter.total)
    _log_result(result)
    return result


def _fresh_google_credentials(
    mailbox: Mailbox, token: OAuthToken, cipher: TokenCipher, clock: Clock
) -> tuple[Credentials, OAuthToken]:
    """Build credentials, refreshing and storing the token first when it expired."""
    credentials = google_credentials(
        token,
        client_id=token.client_id or "",
        client_secret=token.client_secret or "",
        token_uri=token.token_uri or GOOGLE_TOKEN_URI,
    )
    if not token.is_expired(clock()):
        return credentials, token

    token = refresh_google_token(credentials, token, account=str(mailbox.id))
    store_token(mailbox.id, token, cipher)
    return credentials, token


def _store_google_refresh(
    mailbox: Mailbox, credentials: Credentials, token: OAuthToken, cipher: TokenCipher
) -> None:
    """Store the token when the transport refreshed it during the round."""
    if credentials.token and credentials.token != token.access_token:
        store_token(mailbox.id, token_from_google(credentials, token), cipher)


def _run_gmail_round(
    mailbox: Mailbox,
    client: GmailClient,
    store: MailStore,
    settings: Settings,
    chunk_size: int,
) -> None:
    history_id = get_cursor(mailbox)
    if history_id is None:
        _gmail_full_sync(mailbox, client, store, settings, chunk_size)
        return

    try:
        changes = client.list_history(history_id)
    except HistoryExpired:
        logger.warning(
            "History id of Gmail mailbox %s expired, so a full sync runs.", mailbox.id
        )
        clear_cursor(mailbox)
        _gmail_full_sync(mailbox, client, store, settings, chunk_size)
        return

    _gmail_fetch_and_store(client, store, changes.added_ids, chunk_size)
    store.apply_label_changes(changes.label_changes)
    store.mark_deleted(changes.deleted_ids)
    set_cursor(mailbox, "", changes.history_id)


def _gmail_full_sync(
    mailbox: Mailbox,
    client: GmailClient,
    store: MailStore,
    settings: Settings,
    chunk_size: int,
) -> None:
    # NOTE: stored messages that were deleted while a history id was expired
    # stay stored, because the listing names only messages that exist.
    store.tally.full_sync = True
    listing = client.start_full_sync(window_days=settings.mail_sync_window_days)
    _gmail_fetch_and_store(client, store, listing.message_ids, chunk_size)
    set_cursor(mailbox, "", listing.history_id)


def _gmail_fetch_and_store(
    client: GmailClient, store: MailStore, message_ids: Sequence[str], chunk_size: int
) -> None:
    """Fetch the messages not stored yet, chunk by chunk, storing each chunk.

    Raises:
      ProviderRateLimited: When Gmail deferred part of a chunk for longer than
        the client waits inline.
    """
    for chunk in _chunks(store.unknown_ids(message_ids), chunk_size):
        fetched = client.fetch_messages(chunk)
        store.tally.fetched += len(fetched.messages)
        kept = [m for m in fetched.messages if not m.labels & SKIPPED_GMAIL_LABELS]
        store.tally.skipped += len(fetched.messages) - len(kept)
        store.add(kept)
        if fetched.deferred_ids:
            raise ProviderRateLimited(
                f"Gmail deferred {len(fetched.deferred_ids)} messages of account "
                f"{client.account_id}; retry in {fetched.retry_after_ms} ms.",
                provider="gmail",
                account=client.account_id,
                retry_after_ms=fetched.retry_after_ms or client.default_backoff_ms,
                hinted=fetched.retry_after_ms is not None,
            )


# Outlook.


def microsoft_authority(token_uri: str | None) -> tuple[str, str]:
    """Split a Microsoft token endpoint into its host URL and tenant.

    Parameters:
      token_uri: Such as ``https://login.microsoftonline.com/TENANT/oauth2/v2.0/token``,
        or ``None``.

    Returns:
      The authority URL and the tenant, or Microsoft's host and ``common`` when
      ``token_uri`` is ``None`` or has another shape.
    """
    marker = "/oauth2/v2.0/token"
    if not token_uri or not token_uri.endswith(marker):
        return MICROSOFT_AUTHORITY_URL, "common"

    authority, _, tenant = token_uri[: -len(marker)].rpartition("/")
    if not authority or not tenant:
        return MICROSOFT_AUTHORITY_URL, "common"

    return authority, tenant


def sync_outlook(
    mailbox_id: int,
    *,
    settings: Settings | None = None,
    cipher: TokenCipher | None = None,
    graph_url: str = GRAPH_URL,
    folders: Sequence[str] = DEFAULT_FOLDERS,
    page_size: int = DEFAULT_PAGE_SIZE,
    clock: Clock = utc_now,
) -> SyncResult:
    """Run one delta round of each synced folder of an Outlook mailbox.

    Folders run one after the other, and each folder's delta link is stored right
    after its messages. A message stored already that a folder reports again
    gains that folder. ``@removed`` with reason ``deleted`` marks it deleted.
    Reason ``changed`` (moved out of the folder) drops that folder only, and
    marks the message deleted when it is in no other synced folder. Graph gives
    a moved message a new id in its new folder, so a move between two synced
    folders stores it again under the new id and marks the old row deleted.

    Parameters:
      mailbox_id: The mailbox to sync.
      settings: The settings. Defaults to the process settings.
      cipher: The token cipher. Defaults to one built from ``settings``.
      graph_url: Graph root URL; tests pass a local server. The token endpoint
        comes from the stored token's ``token_uri``.
      folders: Well-known folder names or ids to sync.
      page_size: Messages per delta page.
      clock: Returns the current aware UTC time.

    Returns:
      The counts and the conversations that got new messages.

    Raises:
      MailboxNotActive: When the mailbox is not an active Outlook mailbox.
      TokenRevoked: When the grant is gone. The caller marks the mailbox.
      ProviderRateLimited: When Graph returns 429, with the hinted wait. Folders
        finished before it keep their new delta links.
      MailProviderError: When a request fails otherwise.
    """
    settings = settings or get_settings()
    cipher = cipher or load_token_cipher(settings=settings)
    mailbox = _active_mailbox(mailbox_id, "outlook")
    token = load_token(mailbox, cipher)
    authority_url, tenant = microsoft_authority(token.token_uri)
    client = OutlookClient(
        account_id=str(mailbox.id),
        token=token,
        client_id=token.client_id or "",
        client_secret=token.client_secret,
        on_token_refreshed=lambda new: store_token(mailbox.id, new, cipher),
        owner_addresses=[mailbox.address],
        graph_url=graph_url,
        authority_url=authority_url,
        tenant=tenant,
        page_size=page_size,
        clock=clock,
    )
    tally = _Tally()
    store = MailStore(mailbox, "outlook", [mailbox.address], tally)
    for folder in folders:
        delta = _outlook_folder_delta(mailbox, client, folder, tally)
        _apply_folder_delta(store, delta)
        set_cursor(mailbox, folder, delta.delta_link)

    result = tally.result(mailbox, client.counter.total)
    _log_result(result)
    return result


def _outlook_folder_delta(
    mailbox: Mailbox, client: OutlookClient, folder: str, tally: _Tally
) -> FolderDelta:
    """Run the folder's delta round, starting over once when its link expired."""
    delta_link = get_cursor(mailbox, folder)
    if delta_link is None:
        tally.full_sync = True
        return client.sync_folder(folder)

    try:
        return client.sync_folder(folder, delta_link)
    except DeltaExpired:
        # NOTE: messages deleted while the link was expired stay stored, because
        # a full round names only the messages that are in the folder.
        logger.warning(
            "Delta link of folder %s of Outlook mailbox %s expired, so it starts over.",
            folder,
            mailbox.id,
        )
        clear_cursor(mailbox, folder)
        tally.full_sync = True
        return client.sync_folder(folder)


def _apply_folder_delta(store: MailStore, delta: FolderDelta) -> None:
    ids = [message.external_id for message in delta.updated]
    known = store.known_ids(ids)
    store.add_to_folder(sorted(known), delta.folder)
    new: list[MailMessage] = []
    for message in delta.updated:
        if message.external_id in known:
            continue

        try:
            new.append(message.to_mail_message())
        except ValueError:
            logger.warning(
                "Outlook message %s of mailbox %s has no date and was not stored.",
                message.external_id,
                store.mailbox_id,
            )
            store.tally.skipped += 1

    store.tally.fetched += len(delta.updated)
    store.add(new)
    store.mark_deleted(delta.deleted_ids)
    store.remove_from_folder(delta.moved_out_ids, delta.folder)


def _log_result(result: SyncResult) -> None:
    logger.info(
        "Synced %s mailbox %s (%s): %d fetched, %d new, %d updated, %d deleted, "
        "%d skipped, %d conversations with new messages, %d requests.",
        result.provider,
        result.mailbox_id,
        "full" if result.full_sync else "incremental",
        result.fetched,
        result.stored,
        result.updated,
        result.deleted,
        result.skipped,
        len(result.conversation_ids),
        result.requests,
    )
