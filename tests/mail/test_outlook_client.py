"""Tests for OutlookClient with O365 aimed at a loopback Graph and token server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import LoopbackServer, RecordedRequest, load_corpus

from wallie.mail.errors import (
    DeltaExpired,
    ProviderRateLimited,
    TokenRevoked,
    is_permanent,
)
from wallie.mail.outlook import OutlookClient, parse_bool
from wallie.mail.ratelimit import DEFAULT_BACKOFF_MS
from wallie.mail.tokens import OAuthToken

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
GRAPH = "https://graph.microsoft.com/"
FOLDER_PATH = "/v1.0/me/mailFolders/inbox/messages/delta"

Reply = tuple[int, dict[str, str], bytes]


def corpus_reply(name: str, server_url: str, status: int = 200, **headers: str) -> Reply:
    """Return a corpus body with Graph links rewritten to the loopback server."""
    text = json.dumps(load_corpus(name)).replace(GRAPH, server_url)
    return status, headers, text.encode()


def token(**changes: Any) -> OAuthToken:
    values: dict[str, Any] = {
        "access_token": "access-1",
        "refresh_token": "refresh-1",
        "expires_at": NOW + timedelta(hours=1),
        "scopes": ("Mail.Read", "offline_access"),
    }
    values.update(changes)
    return OAuthToken(**values)


def make_client(server: LoopbackServer, **kwargs: Any) -> OutlookClient:
    values: dict[str, Any] = {
        "account_id": f"acct-{id(server)}",
        "token": token(),
        "client_id": "client-1",
        "client_secret": "secret-1",
        "graph_url": server.url,
        "authority_url": server.url.rstrip("/"),
        "page_size": 2,
        "clock": lambda: NOW,
    }
    values.update(kwargs)
    return OutlookClient(**values)


def sequence(replies: list[Callable[[str], Reply]]) -> Callable[[RecordedRequest], Reply]:
    """Answer requests in order; each reply gets the server URL."""
    pending = list(replies)
    holder: dict[str, str] = {}

    def route(request: RecordedRequest) -> Reply:
        return pending.pop(0)(holder["url"])

    route.holder = holder  # type: ignore[attr-defined]
    return route


def start(loopback: Any, replies: list[Callable[[str], Reply]]) -> LoopbackServer:
    route = sequence(replies)
    server = loopback(route)
    route.holder["url"] = server.url  # type: ignore[attr-defined]
    return server


def page(name: str, status: int = 200, **headers: str) -> Callable[[str], Reply]:
    return lambda url: corpus_reply(name, url, status, **headers)


def raw(status: int, body: dict[str, Any], **headers: str) -> Callable[[str], Reply]:
    return lambda url: (status, headers, json.dumps(body).encode())


ROUND1 = [
    page("graph/messages_delta_round1_page1.json"),
    page("graph/messages_delta_round1_page2.json"),
    page("graph/messages_delta_round1_page3_final_deltalink.json"),
]


def test_delta_round1_three_pages(loopback: Any) -> None:
    server = start(loopback, ROUND1)
    client = make_client(server)

    delta = client.sync_folder("inbox")

    assert delta.pages == 3
    assert [m.external_id for m in delta.updated] == [
        "AAMkADNkNAAASq35xAAA=",
        "AQMkADNkNAAAVRMKAAAAA==",
        "AQMkADNkNAAAgWkAAAA",
        "AQMkADNkNAAAgWJAAAA",
        "AAMkADk0MGFkODE3LWEAAA=",
    ]
    assert [m.is_read for m in delta.updated] == [False, True, True, True, True]
    assert delta.updated[0].sender is not None
    assert delta.updated[0].sender.email == "ines.k@example.com"
    assert delta.delta_link.startswith(server.url)
    assert "$deltatoken=GwcBoTmPuoGNlgXgF1nyUNMXY" in delta.delta_link
    first, second, third = server.requests
    assert first.path == FOLDER_PATH
    assert "isRead" in first.query["$select"][0].split(",")
    assert first.headers["prefer"] == "odata.maxpagesize=2"
    assert first.headers["authorization"] == "Bearer access-1"
    assert second.query == {"$skiptoken": ["GwcBoTmPuoTQWfcsAbkYM"]}
    assert third.headers["prefer"] == "odata.maxpagesize=2"


def test_delta_round2_removed_and_is_read_string(loopback: Any) -> None:
    server = start(
        loopback, [page("graph/messages_delta_round2_removed_and_updated_isRead_as_string.json")]
    )
    client = make_client(server)
    link = f"{server.url}v1.0/me/mailfolders('x')/messages/delta?$deltatoken=abc"

    delta = client.sync_folder("inbox", delta_link=link)

    assert delta.deleted_ids == ("AAMkADk0MGFkODE3LWE4MmYtNDRhOS0Dh_6qB-pB2Sa2pUum19a6YAAKnLuxoAAA=",)
    assert delta.moved_out_ids == ()
    assert [m.external_id for m in delta.updated] == ["AAMkADNkNAAASq35xAAA="]
    assert delta.updated[0].is_read is True
    assert server.requests[0].query == {"$deltatoken": ["abc"]}


def test_removed_reason_changed_is_move(loopback: Any) -> None:
    server = start(loopback, [page("graph/messages_delta_removed_reason_changed_synthetic.json")])
    client = make_client(server)

    delta = client.sync_folder("inbox", delta_link=f"{server.url}v1.0/delta?$deltatoken=a")

    assert delta.moved_out_ids == ("AAMkAGFAKEmovedOutOfInbox0001AAA=",)
    assert delta.deleted_ids == ()


def test_410_raises_delta_expired(loopback: Any) -> None:
    server = start(loopback, [page("graph/error_410_sync_state_not_found.json", 410)])
    client = make_client(server)

    with pytest.raises(DeltaExpired) as raised:
        client.sync_folder("inbox", delta_link=f"{server.url}v1.0/delta?$deltatoken=old")

    assert raised.value.folder == "inbox"
    assert is_permanent(raised.value) is False


def test_429_with_retry_after(loopback: Any) -> None:
    throttled = page(
        "graph/error_429_application_throttled_mailbox_concurrency.json", 429, **{"Retry-After": "1"}
    )
    server = start(loopback, [throttled])
    client = make_client(server)

    with pytest.raises(ProviderRateLimited) as raised:
        client.sync_folder("inbox")

    assert raised.value.retry_after_ms == 1_000
    assert raised.value.hinted is True
    assert len(server.requests) == 1  # O365 did not retry on its own.


def test_429_without_retry_after(loopback: Any) -> None:
    server = start(loopback, [page("graph/error_429_no_retry_after_header.json", 429)])
    client = make_client(server)

    with pytest.raises(ProviderRateLimited) as raised:
        client.sync_folder("inbox")

    assert raised.value.retry_after_ms == DEFAULT_BACKOFF_MS
    assert raised.value.hinted is False
    assert len(server.requests) == 1


def test_401_refreshes_once_then_retries(loopback: Any) -> None:
    refreshed = {
        "access_token": "access-2",
        "refresh_token": "refresh-2",
        "expires_in": 3600,
        "scope": "Mail.Read offline_access",
        "token_type": "Bearer",
    }
    server = start(
        loopback,
        [
            page("graph/error_401_invalid_authentication_token_compact_token.json", 401),
            raw(200, refreshed),
            page("graph/messages_delta_round1_page3_final_deltalink.json"),
        ],
    )
    stored: list[OAuthToken] = []
    client = make_client(server, on_token_refreshed=stored.append)

    delta = client.sync_folder("inbox")

    assert len(delta.updated) == 1
    token_request = server.requests[1]
    assert token_request.method == "POST"
    assert token_request.path == "/common/oauth2/v2.0/token"
    form = dict(pair.split("=", 1) for pair in token_request.body.decode().split("&"))
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == "refresh-1"
    assert "authorization" not in token_request.headers
    assert server.requests[2].headers["authorization"] == "Bearer access-2"
    assert [t.refresh_token for t in stored] == ["refresh-2"]
    assert stored[0].expires_at == NOW + timedelta(seconds=3600)


def test_401_twice_raises_token_revoked(loopback: Any) -> None:
    unauthorized = page("graph/error_401_invalid_authentication_token_compact_token.json", 401)
    refreshed = raw(200, {"access_token": "access-2", "expires_in": 60})
    server = start(loopback, [unauthorized, refreshed, unauthorized])
    client = make_client(server)

    with pytest.raises(TokenRevoked) as raised:
        client.sync_folder("inbox")

    assert raised.value.reason == "InvalidAuthenticationToken"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("graph/aad_token_endpoint_invalid_grant_AADSTS700082.json", "invalid_grant"),
        ("graph/aad_token_endpoint_missing_refresh_token_AADSTS900144.json", "invalid_request"),
    ],
)
def test_token_endpoint_errors_revoke(loopback: Any, name: str, reason: str) -> None:
    server = start(loopback, [page(name, 400)])
    client = make_client(server, token=token(expires_at=NOW - timedelta(minutes=5)))

    with pytest.raises(TokenRevoked) as raised:
        client.sync_folder("inbox")

    assert raised.value.reason == reason
    assert is_permanent(raised.value) is True
    assert len(server.requests) == 1  # Only the token request.
    assert "AADSTS" in str(raised.value)


def test_missing_refresh_token_revokes_without_request(loopback: Any) -> None:
    server = start(loopback, [])
    expired = token(refresh_token=None, expires_at=NOW - timedelta(minutes=5))
    client = make_client(server, token=expired)

    with pytest.raises(TokenRevoked) as raised:
        client.sync_folder("inbox")

    assert raised.value.reason == "missing_refresh_token"
    assert server.requests == []


def test_link_to_other_host_rejected(loopback: Any) -> None:
    server = start(loopback, [])
    client = make_client(server)

    with pytest.raises(ValueError, match="Refusing to follow"):
        client.sync_folder("inbox", delta_link=f"{GRAPH}v1.0/delta?$deltatoken=x")

    assert server.requests == []


def test_concurrency_limited_per_mailbox(loopback: Any) -> None:
    final = load_corpus("graph/messages_delta_round1_page3_final_deltalink.json")
    gate = threading.Event()

    def route(request: RecordedRequest) -> Reply:
        gate.wait(timeout=5)
        time.sleep(0.05)  # Keeps requests overlapping.
        return 200, {}, json.dumps(final).encode()

    server = loopback(route)
    client = make_client(server, max_concurrent_requests=4)
    folders = [f"folder{number}" for number in range(8)]
    threading.Timer(0.2, gate.set).start()

    results = client.sync_folders(folders=folders)

    assert set(results) == set(folders)
    assert len(server.requests) == 8
    assert server.max_in_flight <= 4
    assert server.max_in_flight >= 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), ("False", False), (None, None), ("x", None)],
)
def test_parse_bool_lenient(value: Any, expected: bool | None) -> None:
    assert parse_bool(value) is expected


def test_full_message_html_body() -> None:
    from wallie.mail.outlook import parse_graph_message

    item = load_corpus("graph/message_get_full_html_body.json")

    parsed = parse_graph_message(item, folder="inbox", owner_addresses=["keesm@example.onmicrosoft.com"])
    mail = parsed.to_mail_message()

    assert parsed.text == "The group represents Nevada."
    assert parsed.html_present is True
    assert parsed.is_outbound is False
    assert mail.sent_at == datetime(2018, 9, 9, 3, 15, 8, tzinfo=UTC)
    assert mail.thread_id == "AAQkADOUpag6yWs="
    assert mail.recipients[0].email == "KeesM@example.onmicrosoft.com"


def test_text_body_with_surrogate_emoji() -> None:
    from wallie.mail.outlook import parse_graph_message

    item = load_corpus("graph/message_get_text_body_prefer_header_emoji_surrogates.json")

    parsed = parse_graph_message(item, folder="sentitems")

    assert parsed.text.startswith("Welcome to our group, Ines! Hope you will enjoy working with us [😊]")
    assert "\r" not in parsed.text
    assert parsed.is_outbound is True
    with pytest.raises(ValueError, match="has no date"):
        parsed.to_mail_message()
