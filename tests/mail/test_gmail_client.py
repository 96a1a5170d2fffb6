"""Tests for GmailClient through googleapiclient's HttpMockSequence and a loopback server."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httplib2
import pytest
from conftest import RecordedRequest, corpus_bytes, load_corpus
from googleapiclient.http import HttpMockSequence

from wallie.mail.errors import (
    HistoryExpired,
    ProviderRateLimited,
    ProviderRequestFailed,
    TokenRevoked,
    is_permanent,
)
from wallie.mail.gmail import MAX_BATCH_SIZE, GmailClient
from wallie.mail.ratelimit import DEFAULT_BACKOFF_MS

NOW = datetime(2023, 3, 7, 18, 18, 0, tzinfo=UTC)
BOUNDARY = "batch_test_boundary"
_BATCH_GET = re.compile(r"GET /gmail/v1/users/me/messages/([^?\s]+)\?")


def ok(body: dict[str, Any] | bytes, **headers: str) -> tuple[dict[str, str], bytes]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"status": "200", "content-type": "application/json", **headers}, content


def error(status: int, body: bytes, **headers: str) -> tuple[dict[str, str], bytes]:
    return {"status": str(status), "content-type": "application/json", **headers}, body


def minimal_message(message_id: str) -> dict[str, Any]:
    data = base64.urlsafe_b64encode(f"Body of {message_id}".encode()).decode()
    return {
        "id": message_id,
        "threadId": message_id,
        "labelIds": ["INBOX"],
        "internalDate": "1715000000000",
        "payload": {"mimeType": "text/plain", "headers": [], "body": {"data": data}},
    }


def batch_body(parts: list[tuple[str, int, bytes, dict[str, str]]]) -> str:
    chunks = []
    for message_id, status, body, headers in parts:
        extra = "".join(f"{key}: {value}\r\n" for key, value in headers.items())
        chunks.append(
            f"--{BOUNDARY}\r\nContent-Type: application/http\r\n"
            f"Content-ID: <response-test + {message_id}>\r\n\r\n"
            f"HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\n{extra}\r\n"
            f"{body.decode()}\r\n"
        )
    return "".join(chunks) + f"--{BOUNDARY}--\r\n"


def batch(parts: list[tuple[str, int, bytes, dict[str, str]]]) -> tuple[dict[str, str], str]:
    headers = {"status": "200", "content-type": f"multipart/mixed; boundary={BOUNDARY}"}
    return headers, batch_body(parts)


def message_part(message_id: str) -> tuple[str, int, bytes, dict[str, str]]:
    return message_id, 200, json.dumps(minimal_message(message_id)).encode(), {}


def batched_ids(body: str) -> list[str]:
    return _BATCH_GET.findall(body)


def make_client(http: Any, **kwargs: Any) -> tuple[GmailClient, list[float]]:
    sleeps: list[float] = []
    client = GmailClient(
        http, account_id="acct-1", sleep=sleeps.append, clock=lambda: NOW, **kwargs
    )
    return client, sleeps


# Incremental sync.


def test_history_pages_with_and_without_history() -> None:
    http = HttpMockSequence(
        [
            ok(corpus_bytes("gmail/history_list_page1_all_types_synthetic.json")),
            ok(corpus_bytes("gmail/history_list_page_with_token_but_no_history_synthetic.json")),
            ok(corpus_bytes("gmail/history_list_page_without_history_key_synthetic.json")),
        ]
    )
    client, _ = make_client(http)

    changes = client.list_history("4810000")

    assert changes.pages == 3
    assert changes.history_id == "4810377"
    assert changes.added_ids == ("18f3a9c2d1e0b001", "18f3aa01aa22c002")
    assert changes.deleted_ids == ("18f3aa9911bbd003",)
    assert set(changes.label_changes) == {"18f3a9c2d1e0b001", "18f3aa01aa22c002"}
    assert changes.label_changes["18f3a9c2d1e0b001"].removed == frozenset({"UNREAD"})
    assert changes.label_changes["18f3aa01aa22c002"].added == frozenset({"Label_7"})
    assert client.counter.by_kind == {"history.list": 3}
    second_query = parse_qs(urlsplit(http.request_sequence[1][0]).query)
    assert second_query["pageToken"] == ["08123456789012345678_FAKE"]
    assert second_query["startHistoryId"] == ["4810000"]


def test_history_expired_404() -> None:
    http = HttpMockSequence(
        [error(404, corpus_bytes("gmail/error_404_history_expired_notFound.json"))]
    )
    client, _ = make_client(http)

    with pytest.raises(HistoryExpired) as raised:
        client.list_history("6874935")

    assert raised.value.start_history_id == "6874935"
    assert raised.value.account == "acct-1"
    assert raised.value.provider == "gmail"
    assert is_permanent(raised.value) is False


# Rate limits and auth on single requests.


def test_403_retry_after_in_message() -> None:
    body = corpus_bytes("gmail/error_403_user_rate_limit_retry_after_in_message.json")
    client, _ = make_client(HttpMockSequence([error(403, body)]))

    with pytest.raises(ProviderRateLimited) as raised:
        client.list_history("1")

    assert raised.value.retry_after_ms == 23_688
    assert raised.value.hinted is True
    assert is_permanent(raised.value) is False


def test_429_retry_after_header_seconds() -> None:
    body = corpus_bytes("gmail/error_429_resource_exhausted.json")
    client, _ = make_client(HttpMockSequence([error(429, body, **{"retry-after": "7"})]))

    with pytest.raises(ProviderRateLimited) as raised:
        client.get_history_id()

    assert raised.value.retry_after_ms == 7_000
    assert raised.value.hinted is True


def test_429_retry_after_header_http_date() -> None:
    body = corpus_bytes("gmail/error_429_resource_exhausted.json")
    hint = {"retry-after": "Tue, 07 Mar 2023 18:18:30 GMT"}
    client, _ = make_client(HttpMockSequence([error(429, body, **hint)]))

    with pytest.raises(ProviderRateLimited) as raised:
        client.get_history_id()

    assert raised.value.retry_after_ms == 30_000


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (429, "gmail/error_429_resource_exhausted.json"),
        (403, "gmail/error_403_quota_queries_per_minute_per_user.json"),
    ],
)
def test_rate_limit_without_hint_uses_default(status: int, name: str) -> None:
    client, _ = make_client(HttpMockSequence([error(status, corpus_bytes(name))]))

    with pytest.raises(ProviderRateLimited) as raised:
        client.list_history("1")

    assert raised.value.retry_after_ms == DEFAULT_BACKOFF_MS
    assert raised.value.hinted is False


def test_403_other_reason_is_permanent() -> None:
    body = json.dumps(
        {"error": {"code": 403, "message": "Denied.", "errors": [{"reason": "forbidden"}]}}
    ).encode()
    client, _ = make_client(HttpMockSequence([error(403, body)]))

    with pytest.raises(ProviderRequestFailed) as raised:
        client.get_history_id()

    assert raised.value.status == 403
    assert is_permanent(raised.value) is True


def test_401_raises_token_revoked() -> None:
    body = json.dumps({"error": {"code": 401, "message": "Invalid Credentials."}}).encode()
    client, _ = make_client(HttpMockSequence([error(401, body)]))

    with pytest.raises(TokenRevoked) as raised:
        client.get_history_id()

    assert is_permanent(raised.value) is True


# Full sync.


def test_full_sync_lists_window_pages() -> None:
    http = HttpMockSequence(
        [
            ok({"emailAddress": "x", "historyId": "900"}),
            ok({"messages": [{"id": "a", "threadId": "a"}], "nextPageToken": "p2"}),
            ok({"messages": [{"id": "b", "threadId": "b"}]}),
        ]
    )
    client, _ = make_client(http)

    listing = client.start_full_sync(window_days=30)

    assert listing.history_id == "900"
    assert listing.message_ids == ("a", "b")
    first_list = parse_qs(urlsplit(http.request_sequence[1][0]).query)
    window_start = int(NOW.timestamp()) - 30 * 86_400
    assert first_list["q"] == [f"after:{window_start}"]
    assert client.counter.by_kind == {"getProfile": 1, "messages.list": 2}


def test_full_sync_empty_mailbox() -> None:
    http = HttpMockSequence([ok({"historyId": "5"}), ok({"resultSizeEstimate": 0})])
    client, _ = make_client(http)

    assert client.start_full_sync(window_days=1).message_ids == ()


# Batch fetches.


def test_batch_size_at_most_50() -> None:
    ids = [f"id{number:03d}" for number in range(120)]
    chunks = [ids[0:50], ids[50:100], ids[100:120]]
    http = HttpMockSequence([batch([message_part(i) for i in chunk]) for chunk in chunks])
    client, _ = make_client(http)

    result = client.fetch_messages(ids)

    assert [m.external_id for m in result.messages] == ids
    assert len(http.request_sequence) == 3
    for (uri, method, body, headers), chunk in zip(
        http.request_sequence, chunks, strict=True
    ):
        assert method == "POST"
        assert uri == "https://gmail.googleapis.com/batch"
        assert headers["content-type"].startswith("multipart/mixed")
        assert batched_ids(body) == chunk
        assert len(batched_ids(body)) <= MAX_BATCH_SIZE
    assert client.counter.by_kind == {"batch": 3}


def test_batch_404_part_skipped_and_reported() -> None:
    not_found = corpus_bytes("gmail/error_404_message_get_not_found.json")
    http = HttpMockSequence(
        [
            batch(
                [
                    message_part("a"),
                    ("18f3aa9911bbd003", 404, not_found, {}),
                    message_part("c"),
                ]
            )
        ]
    )
    client, _ = make_client(http)

    result = client.fetch_messages(["a", "18f3aa9911bbd003", "c"])

    assert [m.external_id for m in result.messages] == ["a", "c"]
    assert result.vanished_ids == ("18f3aa9911bbd003",)
    assert result.deferred_ids == ()
    assert result.failed_ids == {}


def test_batch_rate_limited_parts_retried_alone() -> None:
    concurrent = corpus_bytes("gmail/error_429_too_many_concurrent_requests_for_user.json")
    quota = corpus_bytes("gmail/error_403_quota_queries_per_minute_per_user.json")
    http = HttpMockSequence(
        [
            batch(
                [
                    message_part("a"),
                    ("b", 429, concurrent, {"Retry-After": "2"}),
                    ("c", 403, quota, {}),
                ]
            ),
            batch([message_part("b"), message_part("c")]),
        ]
    )
    client, sleeps = make_client(http, default_backoff_ms=1_000)

    result = client.fetch_messages(["a", "b", "c"])

    assert [m.external_id for m in result.messages] == ["a", "b", "c"]
    assert batched_ids(http.request_sequence[1][2]) == ["b", "c"]
    assert sleeps == [2.0]
    assert client.counter.total == 2


def test_batch_long_hint_defers_remaining_ids() -> None:
    body = corpus_bytes("gmail/error_403_user_rate_limit_retry_after_in_message.json")
    http = HttpMockSequence(
        [batch([message_part("a"), ("b", 403, body, {})])]
    )
    client, sleeps = make_client(http, max_batch_size=2)

    result = client.fetch_messages(["a", "b", "c"])

    assert [m.external_id for m in result.messages] == ["a"]
    assert result.deferred_ids == ("b", "c")
    assert result.retry_after_ms == 23_688
    assert sleeps == []


def test_batch_part_retries_exhausted() -> None:
    concurrent = corpus_bytes("gmail/error_429_too_many_concurrent_requests_for_user.json")
    limited = ("b", 429, concurrent, {"Retry-After": "1"})
    http = HttpMockSequence([batch([limited]) for _ in range(4)])
    client, sleeps = make_client(http)

    result = client.fetch_messages(["b"])

    assert result.messages == ()
    assert set(result.failed_ids) == {"b"}
    assert len(http.request_sequence) == 4
    assert sleeps == [1.0, 1.0, 1.0]


def test_whole_batch_429_retried() -> None:
    body = corpus_bytes("gmail/error_429_resource_exhausted.json")
    http = HttpMockSequence(
        [error(429, body, **{"retry-after": "1"}), batch([message_part("a")])]
    )
    client, sleeps = make_client(http)

    result = client.fetch_messages(["a"])

    assert [m.external_id for m in result.messages] == ["a"]
    assert sleeps == [1.0]


def test_batch_401_part_raises_token_revoked() -> None:
    body = json.dumps({"error": {"code": 401, "message": "Invalid Credentials."}}).encode()
    http = HttpMockSequence([batch([("a", 401, body, {})]), batch([("a", 401, body, {})])])
    client, _ = make_client(http)

    with pytest.raises(TokenRevoked):
        client.fetch_messages(["a"])


def test_invalid_batch_size_rejected() -> None:
    with pytest.raises(ValueError, match="max_batch_size=51"):
        GmailClient(HttpMockSequence([]), account_id="a", max_batch_size=51)


# Loopback server with a real httplib2.Http.


def test_loopback_server_receives_every_request(loopback: Any) -> None:
    history = load_corpus("gmail/history_list_page_without_history_key_synthetic.json")

    def route(request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        if request.path.endswith("/history"):
            return 200, {}, json.dumps(history).encode()

        ids = batched_ids(request.body.decode())
        headers = {"Content-Type": f"multipart/mixed; boundary={BOUNDARY}"}
        return 200, headers, batch_body([message_part(i) for i in ids]).encode()

    server = loopback(route)
    client = GmailClient(httplib2.Http(timeout=10), account_id="acct-1", api_endpoint=server.url)

    changes = client.list_history("4810000")
    result = client.fetch_messages(["x1", "x2"])

    assert changes.history_id == "4810377"
    assert [m.text for m in result.messages] == ["Body of x1", "Body of x2"]
    assert [r.path for r in server.requests] == ["/gmail/v1/users/me/history", "/batch"]
