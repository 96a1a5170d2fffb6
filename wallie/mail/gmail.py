"""Gmail API client: full and incremental listing, batched fetches, profile.

The client wraps ``googleapiclient.discovery.build("gmail", "v1", ...)`` with the
discovery document bundled in google-api-python-client, so building it makes no
request. The caller passes the ``http`` object: in production an
``google_auth_httplib2.AuthorizedHttp`` (see :func:`wallie.mail.tokens.google_http`),
in tests ``googleapiclient.http.HttpMock``/``HttpMockSequence`` or an
``httplib2.Http`` together with ``api_endpoint`` aimed at a local server.

The library's own retries stay off (``num_retries=0``): every rate limit is turned
into :class:`~wallie.mail.errors.ProviderRateLimited` with the server's hint, so
the caller's retry policy decides when to try again. The one exception is a batch
whose parts are rate-limited: those message ids are sent again, alone, after the
hinted wait, when that wait is short (see :data:`MAX_INLINE_WAIT_MS`).
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import httplib2
from google.auth.exceptions import RefreshError, TransportError
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from wallie.logging import get_logger

from .errors import (
    HistoryExpired,
    MailProviderError,
    ProviderRateLimited,
    ProviderRequestFailed,
    ProviderUnavailable,
    TokenRevoked,
)
from .gmail_mime import parse_gmail_message
from .message import MailMessage
from .ratelimit import (
    DEFAULT_BACKOFF_MS,
    Clock,
    RequestCounter,
    parse_retry_after_header,
    parse_retry_after_message,
    utc_now,
)
from .tokens import revoked_reason

logger = get_logger(__name__)

PROVIDER = "gmail"

#: Maximum number of ``messages.get`` calls in one batch request. Gmail's batch
#: guide allows 100 calls but advises at most 50, because larger batches trigger
#: rate limiting (per-part 429 "Too many concurrent requests for user").
MAX_BATCH_SIZE = 50

#: Page size for ``messages.list`` and ``history.list``, the API maximum.
PAGE_SIZE = 500

#: Maximum server-hinted wait taken inside one fetch call, in milliseconds.
#: A longer hint ends the call, and the ids still to fetch are returned as deferred.
MAX_INLINE_WAIT_MS = 10_000

#: How often one message id is sent again after a rate-limited or 5xx batch part.
MAX_PART_RETRIES = 3

#: Error reasons that Gmail uses for rate limits on a 403 response.
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


@dataclass(frozen=True)
class FullSyncListing:
    """Result of listing a mailbox for a full sync.

    Attributes:
      history_id: The mailbox history id read before listing. Starting the next
        incremental sync there repeats at most a few changes and misses none.
      message_ids: Ids of messages newer than the window start, newest first.
    """

    history_id: str
    message_ids: tuple[str, ...]


@dataclass(frozen=True)
class LabelChange:
    """Net label change of one message over a history listing."""

    added: frozenset[str]
    removed: frozenset[str]


@dataclass(frozen=True)
class HistoryChanges:
    """Net changes of a mailbox since a ``startHistoryId``.

    Attributes:
      history_id: The mailbox history id after the last page, to store as the next
        ``startHistoryId``.
      added_ids: New messages, in history order, without those deleted later.
      deleted_ids: Deleted messages.
      label_changes: Label changes of messages that still exist, by message id.
      pages: Number of ``history.list`` pages read.
    """

    history_id: str
    added_ids: tuple[str, ...]
    deleted_ids: tuple[str, ...]
    label_changes: dict[str, LabelChange]
    pages: int


@dataclass(frozen=True)
class FetchResult:
    """Result of fetching messages in batches.

    Attributes:
      messages: Parsed messages, in request order.
      vanished_ids: Ids for which Gmail returned 404: deleted since they were listed.
      failed_ids: Ids whose part failed for good, with the reason.
      deferred_ids: Ids not fetched because of a rate limit. Fetch them again
        after ``retry_after_ms``.
      retry_after_ms: The wait before fetching ``deferred_ids``, or ``None``.
    """

    messages: tuple[MailMessage, ...]
    vanished_ids: tuple[str, ...]
    failed_ids: dict[str, str]
    deferred_ids: tuple[str, ...]
    retry_after_ms: int | None


@dataclass
class _BatchOutcome:
    """Per-part results of one batch request."""

    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    vanished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    retry: list[str] = field(default_factory=list)
    retry_after_ms: list[int] = field(default_factory=list)


class _CountingHttp:
    """Proxy of an httplib2-style ``http`` object that counts requests.

    A batch is one request, because it is one HTTP round trip. Token refreshes
    made by ``AuthorizedHttp`` go through its inner ``http`` and are not counted.
    """

    def __init__(self, http: Any, counter: RequestCounter) -> None:
        self._http = http
        self._counter = counter

    def request(self, uri: str, method: str = "GET", *args: Any, **kwargs: Any) -> Any:
        self._counter.add(_request_kind(uri))
        return self._http.request(uri, method, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._http, name)


def _request_kind(uri: str) -> str:
    path = urlsplit(uri).path
    if path.rstrip("/").endswith("/batch") or "/batch/" in path:
        return "batch"

    if path.endswith("/history"):
        return "history.list"

    if path.endswith("/profile"):
        return "getProfile"

    if path.endswith("/messages"):
        return "messages.list"

    return "other"


def _error_reason(content: bytes | str | None) -> tuple[str, str]:
    """Return the first ``errors[].reason`` and the message of a Google error body."""
    try:
        body = json.loads(content or b"{}")
    except ValueError:
        return "", ""

    error = body.get("error", {}) if isinstance(body, dict) else {}
    if not isinstance(error, dict):
        return str(error), ""

    details = error.get("errors") or [{}]
    return str(details[0].get("reason", "")), str(error.get("message", ""))


class GmailClient:
    """Gmail API client for one mailbox.

    Parameters:
      http: An httplib2-style object with a ``request`` method.
      account_id: The Wallie account id, used in errors and log lines.
      owner_addresses: The mailbox owner's addresses, to mark outbound mail.
      api_endpoint: Base URL in place of ``https://gmail.googleapis.com/``, for a
        local test server. It must end with ``/``.
      counter: Counter of HTTP requests. A new one is made when omitted.
      default_backoff_ms: Wait reported when a rate limit carries no hint.
      max_batch_size: Message fetches per batch request, at most 50.
      sleep: Function that waits a number of seconds, replaced in tests.
      clock: Function that returns the current aware UTC time.
    """

    def __init__(
        self,
        http: Any,
        *,
        account_id: str,
        owner_addresses: Iterable[str] = (),
        api_endpoint: str | None = None,
        counter: RequestCounter | None = None,
        default_backoff_ms: int = DEFAULT_BACKOFF_MS,
        max_batch_size: int = MAX_BATCH_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock = utc_now,
    ) -> None:
        if not 1 <= max_batch_size <= MAX_BATCH_SIZE:
            raise ValueError(
                f"max_batch_size={max_batch_size} is invalid: "
                f"expected 1 to {MAX_BATCH_SIZE}."
            )

        self.account_id = account_id
        self.counter = counter or RequestCounter()
        self.owner_addresses = tuple(owner_addresses)
        self.default_backoff_ms = default_backoff_ms
        self.max_batch_size = max_batch_size
        self._sleep = sleep
        self._clock = clock
        self._http = _CountingHttp(http, self.counter)
        self._api_endpoint = api_endpoint
        client_options = {"api_endpoint": api_endpoint} if api_endpoint else None
        self._service = build(
            "gmail",
            "v1",
            http=self._http,
            static_discovery=True,
            cache_discovery=False,
            client_options=client_options,
        )

    # Error translation.

    def _rate_limit_hint_ms(self, error: HttpError) -> tuple[int, bool]:
        now = self._clock()
        header_ms = parse_retry_after_header(error.resp.get("retry-after"), now=now)
        if header_ms is not None:
            return header_ms, True

        _, message = _error_reason(error.content)
        message_ms = parse_retry_after_message(message, now=now)
        if message_ms is not None:
            return message_ms, True

        return self.default_backoff_ms, False

    def _is_rate_limit(self, error: HttpError) -> bool:
        if error.resp.status == 429:
            return True

        reason, _ = _error_reason(error.content)
        return error.resp.status == 403 and reason in RATE_LIMIT_REASONS

    def _translate(self, error: HttpError, operation: str) -> MailProviderError:
        """Map an HttpError to the matching provider error."""
        status = error.resp.status
        reason, message = _error_reason(error.content)
        where = f"Gmail {operation} for account {self.account_id}"

        if self._is_rate_limit(error):
            wait_ms, hinted = self._rate_limit_hint_ms(error)
            return ProviderRateLimited(
                f"{where} was rate-limited ({status} {reason}); retry in {wait_ms} ms.",
                provider=PROVIDER,
                account=self.account_id,
                retry_after_ms=wait_ms,
                hinted=hinted,
            )

        if status == 401:
            return TokenRevoked(
                f"{where} was rejected with 401 after a token refresh; "
                "the user must connect the mailbox again.",
                provider=PROVIDER,
                account=self.account_id,
                reason=reason or "unauthorized",
            )

        if status >= 500:
            return ProviderUnavailable(
                f"{where} failed with {status}: {message}",
                provider=PROVIDER,
                account=self.account_id,
            )

        return ProviderRequestFailed(
            f"{where} failed with {status} {reason}: {message}",
            provider=PROVIDER,
            account=self.account_id,
            status=status,
        )

    def _translate_refresh(
        self, error: RefreshError, operation: str
    ) -> MailProviderError:
        reason = revoked_reason(error)
        where = f"Gmail {operation} for account {self.account_id}"
        if reason is None:
            return ProviderUnavailable(
                f"{where} failed because the token refresh failed for now.",
                provider=PROVIDER,
                account=self.account_id,
            )

        return TokenRevoked(
            f"{where} failed because the refresh token was rejected ({reason}); "
            "the user must connect the mailbox again.",
            provider=PROVIDER,
            account=self.account_id,
            reason=reason,
        )

    def _execute(self, request: Any, operation: str) -> dict[str, Any]:
        """Run one API request, translating every failure to a provider error."""
        try:
            return request.execute(num_retries=0)
        except HttpError as error:
            raise self._translate(error, operation) from error
        except RefreshError as error:
            raise self._translate_refresh(error, operation) from error
        except (httplib2.HttpLib2Error, TransportError, OSError) as error:
            raise ProviderUnavailable(
                f"Gmail {operation} for account {self.account_id} failed: {error}",
                provider=PROVIDER,
                account=self.account_id,
            ) from error

    # Listing.

    def get_history_id(self) -> str:
        """Read the mailbox's current history id with ``users.getProfile``.

        Returns:
          The history id, to store as the next ``startHistoryId``.

        Raises:
          MailProviderError: When the request fails.
        """
        request = self._service.users().getProfile(userId="me")
        profile = self._execute(request, "getProfile")
        return str(profile["historyId"])

    def list_message_ids(
        self, *, window_days: int, now: datetime | None = None
    ) -> list[str]:
        """List the ids of messages newer than ``window_days`` days.

        Parameters:
          window_days: Size of the window, in days before ``now``.
          now: End of the window. Defaults to the client's clock.

        Returns:
          Message ids, newest first, across all pages.

        Raises:
          MailProviderError: When a page request fails.
        """
        start = (now or self._clock()) - timedelta(days=window_days)
        query = f"after:{int(start.timestamp())}"
        messages = self._service.users().messages()
        ids: list[str] = []
        page_token: str | None = None

        while True:
            request = messages.list(
                userId="me", q=query, maxResults=PAGE_SIZE, pageToken=page_token
            )
            page = self._execute(request, "messages.list")
            ids.extend(str(item["id"]) for item in page.get("messages", []))
            page_token = page.get("nextPageToken")
            if not page_token:
                return ids

    def start_full_sync(
        self, *, window_days: int, now: datetime | None = None
    ) -> FullSyncListing:
        """Read the history id, then list the messages of the window.

        Parameters:
          window_days: Size of the window, in days before ``now``.
          now: End of the window. Defaults to the client's clock.

        Returns:
          The history id and the message ids.

        Raises:
          MailProviderError: When a request fails.
        """
        history_id = self.get_history_id()
        ids = self.list_message_ids(window_days=window_days, now=now)
        logger.info(
            "Listed %d Gmail messages for a full sync of account %s.",
            len(ids),
            self.account_id,
        )
        return FullSyncListing(history_id=history_id, message_ids=tuple(ids))

    def list_history(self, start_history_id: str) -> HistoryChanges:
        """Collect the mailbox changes since ``start_history_id``, across all pages.

        Parameters:
          start_history_id: The history id stored after the previous sync.

        Returns:
          The net changes and the history id to store next.

        Raises:
          HistoryExpired: When Gmail no longer has ``start_history_id`` (404).
            The caller runs one full sync.
          MailProviderError: When a page request fails otherwise.
        """
        history = self._service.users().history()
        collector = _HistoryCollector()
        page_token: str | None = None
        latest_history_id = start_history_id

        while True:
            request = history.list(
                userId="me",
                startHistoryId=start_history_id,
                maxResults=PAGE_SIZE,
                pageToken=page_token,
            )
            page = self._history_page(request, start_history_id)
            collector.add_page(page)
            latest_history_id = str(page.get("historyId", latest_history_id))
            page_token = page.get("nextPageToken")
            if not page_token:
                break

        return collector.result(latest_history_id)

    def _history_page(self, request: Any, start_history_id: str) -> dict[str, Any]:
        try:
            return self._execute(request, "history.list")
        except ProviderRequestFailed as error:
            if error.status != 404:
                raise

            logger.warning(
                "Gmail history id %s expired for account %s; a full sync is needed.",
                start_history_id,
                self.account_id,
            )
            raise HistoryExpired(
                f"Gmail history id {start_history_id} of account {self.account_id} "
                "is no longer available; run a full sync.",
                provider=PROVIDER,
                account=self.account_id,
                start_history_id=start_history_id,
            ) from error

    # Fetching.

    def _new_batch(self) -> BatchHttpRequest:
        if self._api_endpoint is None:
            return self._service.new_batch_http_request()

        # new_batch_http_request() takes its URL from the discovery document's
        # rootUrl, which api_endpoint does not change.
        return BatchHttpRequest(batch_uri=urljoin(self._api_endpoint, "batch"))

    def _run_batch(self, message_ids: Sequence[str]) -> _BatchOutcome:
        outcome = _BatchOutcome()
        messages = self._service.users().messages()

        def on_response(
            request_id: str, response: Any, error: HttpError | None
        ) -> None:
            self._record_part(outcome, request_id, response, error)

        batch = self._new_batch()
        for message_id in message_ids:
            request = messages.get(userId="me", id=message_id, format="full")
            batch.add(request, callback=on_response, request_id=message_id)

        try:
            batch.execute()
        except HttpError as error:
            translated = self._translate(error, "batch messages.get")
            if not isinstance(translated, ProviderRateLimited | ProviderUnavailable):
                raise translated from error

            outcome.retry.extend(message_ids)
            outcome.retry_after_ms.append(self._retry_after(translated))
        except RefreshError as error:
            raise self._translate_refresh(error, "batch messages.get") from error

        return outcome

    def _retry_after(self, error: MailProviderError) -> int:
        if isinstance(error, ProviderRateLimited):
            return error.retry_after_ms

        return self.default_backoff_ms

    def _record_part(
        self,
        outcome: _BatchOutcome,
        message_id: str,
        response: Any,
        error: HttpError | None,
    ) -> None:
        if error is None:
            outcome.resources[message_id] = response
            return

        status = error.resp.status
        if status == 404:
            outcome.vanished.append(message_id)
            return

        translated = self._translate(error, f"messages.get {message_id}")
        if isinstance(translated, TokenRevoked):
            raise translated

        if isinstance(translated, ProviderRateLimited | ProviderUnavailable):
            outcome.retry.append(message_id)
            outcome.retry_after_ms.append(self._retry_after(translated))
            return

        outcome.failed[message_id] = str(translated)

    def fetch_messages(self, message_ids: Sequence[str]) -> FetchResult:
        """Fetch and parse messages with batch requests of at most ``max_batch_size``.

        A message that vanished (404) is skipped and reported. Rate-limited and
        5xx parts are queued again, up to :data:`MAX_PART_RETRIES` times each,
        and sent with the next batch after the hinted wait. A hint longer than
        :data:`MAX_INLINE_WAIT_MS` stops the fetch, and the ids still queued come
        back as ``deferred_ids``.

        Parameters:
          message_ids: Gmail message ids. Duplicates are fetched once.

        Returns:
          The parsed messages and the ids that were not fetched, by cause.

        Raises:
          TokenRevoked: When the grant is gone.
          MailProviderError: When a batch request fails for a reason that is
            neither a rate limit nor a server error.
        """
        pending = deque(dict.fromkeys(message_ids))
        attempts: dict[str, int] = {}
        resources: dict[str, dict[str, Any]] = {}
        vanished: list[str] = []
        failed: dict[str, str] = {}

        while pending:
            size = min(self.max_batch_size, len(pending))
            chunk = [pending.popleft() for _ in range(size)]
            outcome = self._run_batch(chunk)
            resources.update(outcome.resources)
            vanished.extend(outcome.vanished)
            failed.update(outcome.failed)
            self._log_batch(outcome)
            if not outcome.retry:
                continue

            wait_ms = max(outcome.retry_after_ms)
            retry_ids = self._requeue(outcome.retry, attempts, failed)
            if wait_ms > MAX_INLINE_WAIT_MS:
                deferred = (*retry_ids, *pending)
                return self._fetch_result(
                    message_ids, resources, vanished, failed, deferred, wait_ms
                )

            pending.extendleft(reversed(retry_ids))
            if retry_ids:
                self._sleep(wait_ms / 1000)

        return self._fetch_result(message_ids, resources, vanished, failed, (), None)

    def _requeue(
        self, retry: list[str], attempts: dict[str, int], failed: dict[str, str]
    ) -> list[str]:
        """Return the ids to send again, moving those out of attempts to ``failed``."""
        again: list[str] = []
        for message_id in retry:
            attempts[message_id] = attempts.get(message_id, 0) + 1
            if attempts[message_id] > MAX_PART_RETRIES:
                failed[message_id] = (
                    f"Still rate-limited or failing after {MAX_PART_RETRIES} retries."
                )
            else:
                again.append(message_id)

        return again

    def _log_batch(self, outcome: _BatchOutcome) -> None:
        for message_id in outcome.vanished:
            logger.info(
                "Gmail message %s of account %s vanished before it was fetched.",
                message_id,
                self.account_id,
            )

        for message_id, reason in outcome.failed.items():
            logger.warning(
                "Gmail message %s of account %s failed: %s",
                message_id,
                self.account_id,
                reason,
            )

        if outcome.retry:
            logger.info(
                "Gmail batch for account %s had %d rate-limited or failed parts; "
                "retrying them.",
                self.account_id,
                len(outcome.retry),
            )

    def _fetch_result(
        self,
        requested: Sequence[str],
        resources: dict[str, dict[str, Any]],
        vanished: list[str],
        failed: dict[str, str],
        deferred: Sequence[str],
        retry_after_ms: int | None,
    ) -> FetchResult:
        parsed: list[MailMessage] = []
        for message_id in dict.fromkeys(requested):
            resource = resources.get(message_id)
            if resource is None:
                continue

            try:
                parsed.append(
                    parse_gmail_message(resource, owner_addresses=self.owner_addresses)
                )
            except (KeyError, ValueError) as error:
                logger.warning(
                    "Gmail message %s of account %s could not be parsed: %s",
                    message_id,
                    self.account_id,
                    error,
                )
                failed[message_id] = f"Invalid message resource: {error}"

        return FetchResult(
            messages=tuple(parsed),
            vanished_ids=tuple(vanished),
            failed_ids=failed,
            deferred_ids=tuple(deferred),
            retry_after_ms=retry_after_ms,
        )


class _HistoryCollector:
    """Folds ``history.list`` pages into net changes.

    A page without a ``history`` key is valid: Gmail sends one when nothing
    changed, sometimes with a ``nextPageToken`` all the same.
    """

    def __init__(self) -> None:
        self.added: dict[str, None] = {}
        self.deleted: dict[str, None] = {}
        self.labels_added: dict[str, set[str]] = {}
        self.labels_removed: dict[str, set[str]] = {}
        self.pages = 0

    def add_page(self, page: dict[str, Any]) -> None:
        self.pages += 1
        for record in page.get("history", []):
            self._add_record(record)

    def _add_record(self, record: dict[str, Any]) -> None:
        for item in record.get("messagesAdded", []):
            message_id = str(item["message"]["id"])
            self.added[message_id] = None
            self.deleted.pop(message_id, None)

        for item in record.get("labelsAdded", []):
            self._change_labels(item, self.labels_added, self.labels_removed)

        for item in record.get("labelsRemoved", []):
            self._change_labels(item, self.labels_removed, self.labels_added)

        for item in record.get("messagesDeleted", []):
            message_id = str(item["message"]["id"])
            self.deleted[message_id] = None
            self.added.pop(message_id, None)

    @staticmethod
    def _change_labels(
        item: dict[str, Any], into: dict[str, set[str]], out_of: dict[str, set[str]]
    ) -> None:
        message_id = str(item["message"]["id"])
        labels = set(item.get("labelIds", []))
        into.setdefault(message_id, set()).update(labels)
        out_of.setdefault(message_id, set()).difference_update(labels)

    def result(self, history_id: str) -> HistoryChanges:
        touched = set(self.labels_added) | set(self.labels_removed)
        changed = touched - set(self.deleted)
        label_changes = {
            message_id: LabelChange(
                added=frozenset(self.labels_added.get(message_id, ())),
                removed=frozenset(self.labels_removed.get(message_id, ())),
            )
            for message_id in sorted(changed)
        }
        return HistoryChanges(
            history_id=history_id,
            added_ids=tuple(self.added),
            deleted_ids=tuple(self.deleted),
            label_changes=label_changes,
            pages=self.pages,
        )


def required_requests(history_pages: int, message_count: int) -> int:
    """Return the fewest requests an incremental sync can make.

    Parameters:
      history_pages: Number of ``history.list`` pages.
      message_count: Number of messages to fetch.

    Returns:
      ``history_pages`` plus one batch per :data:`MAX_BATCH_SIZE` messages.
    """
    return history_pages + math.ceil(message_count / MAX_BATCH_SIZE)
