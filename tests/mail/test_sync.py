"""Tests for Gmail and Outlook mailbox sync into storage, on SQLite and PostgreSQL.

Gmail runs against a stateful fake on loopback (tests/mail/fakes.py) through
a real httplib2 transport. Graph runs against a loopback server that serves
corpus delta pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httplib2
import peewee
import pytest
from cryptography.fernet import Fernet

from tests.mail.fakes import NOW, FakeGmail, FakeGraph, corpus, serve
from wallie.db.models import (
    Attachment,
    Contact,
    Conversation,
    ConversationParticipant,
    Mailbox,
    Message,
    SyncState,
)
from wallie.mail import sync as sync_module
from wallie.mail.errors import ProviderRateLimited, TokenRevoked
from wallie.mail.mailboxes import connect_mailbox, get_cursor, load_token
from wallie.mail.sync import (
    MailboxNotActive,
    microsoft_authority,
    sync_gmail,
    sync_outlook,
)
from wallie.mail.tokens import OAuthToken, TokenCipher
from wallie.settings import Settings
from wallie.storage import get_or_create_user

OWNER = "sam@example.com"


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher(Fernet.generate_key().decode())


@pytest.fixture
def mail_settings(settings: Settings, cipher: TokenCipher) -> Settings:
    return settings.replace(mail_sync_window_days=30)


def make_token(token_uri: str | None = None, **changes: Any) -> OAuthToken:
    values: dict[str, Any] = {
        "access_token": "access-1",
        "refresh_token": "refresh-1",
        "expires_at": NOW + timedelta(days=3650),
        "scopes": ("https://www.googleapis.com/auth/gmail.readonly",),
        "client_id": "client-1",
        "client_secret": "secret-1",
        "token_uri": token_uri,
    }
    values.update(changes)
    return OAuthToken(**values)


def add_mailbox(
    provider: str, cipher: TokenCipher, token: OAuthToken | None = None
) -> Mailbox:
    user, _ = get_or_create_user(OWNER)
    mailbox, _ = connect_mailbox(user, provider, OWNER, token or make_token(), cipher)
    return mailbox


@pytest.fixture
def gmail(db: peewee.Database) -> Iterator[tuple[FakeGmail, str]]:
    fake = FakeGmail(owner=OWNER)
    with serve(fake.route) as url:
        yield fake, url


def run_gmail(
    mailbox: Mailbox, url: str, settings: Settings, cipher: TokenCipher, **kwargs: Any
) -> Any:
    return sync_gmail(
        mailbox.id,
        settings=settings,
        cipher=cipher,
        http_factory=lambda credentials: httplib2.Http(timeout=10),
        api_endpoint=url,
        clock=lambda: NOW,
        **kwargs,
    )


def stored(channel: str = "gmail") -> dict[str, tuple[bool, tuple[str, ...]]]:
    """Return every stored message as external id -> (is_deleted, labels)."""
    rows = (
        Message.select().where(Message.channel == channel).order_by(Message.external_id)
    )
    return {row.external_id: (row.is_deleted, tuple(row.labels)) for row in rows}


# Gmail.


def test_gmail_full_then_incremental(
    gmail: tuple[FakeGmail, str], mail_settings: Settings, cipher: TokenCipher
) -> None:
    fake, url = gmail
    fake.add("m1", thread_id="t1", days_ago=3)
    fake.add(
        "m2",
        thread_id="t1",
        sender=OWNER,
        to="ines.k@example.com",
        labels=("SENT",),
        days_ago=2,
    )
    fake.add("m3", thread_id="t3", sender="olu.a@example.com", days_ago=1)
    fake.add("old", days_ago=45)
    mailbox = add_mailbox("gmail", cipher)

    first = run_gmail(mailbox, url, mail_settings, cipher)

    assert first.full_sync is True
    assert first.stored == 3
    assert set(stored()) == {"m1", "m2", "m3"}
    assert get_cursor(mailbox) == str(fake.history_id)
    conversations = {c.external_id: c.id for c in Conversation.select()}
    assert set(conversations) == {"t1", "t3"}
    assert first.conversation_ids == tuple(sorted(conversations.values()))
    outbound = Message.get(Message.external_id == "m2")
    assert outbound.direction == "outbound"
    assert Contact.get_by_id(outbound.sender_id).is_self is True
    inbound = Message.get(Message.external_id == "m1")
    assert inbound.direction == "inbound"
    assert inbound.body == "Can you send the quote by Friday?"
    assert Contact.get_by_id(inbound.sender_id).email == "ines.k@example.com"
    participants = ConversationParticipant.select().where(
        ConversationParticipant.conversation == conversations["t1"]
    )
    assert [p.contact.email for p in participants] == ["ines.k@example.com"]

    fake.add("m4", thread_id="t3", sender="olu.a@example.com")
    fake.delete("m1")
    fake.relabel("m3", add=("Label_7",), remove=("UNREAD",))
    fake.add("m5", thread_id="t5")
    fake.delete("m5")
    second = run_gmail(mailbox, url, mail_settings, cipher)

    assert second.full_sync is False
    assert second.stored == 1
    assert second.deleted == 1
    assert second.updated == 1
    assert second.conversation_ids == (conversations["t3"],)
    assert stored() == {
        "m1": (True, ("INBOX", "UNREAD")),
        "m2": (False, ("SENT",)),
        "m3": (False, ("INBOX", "Label_7")),
        "m4": (False, ("INBOX", "UNREAD")),
    }
    assert get_cursor(mailbox) == str(fake.history_id)


def test_gmail_attachments_stored_once_with_their_message(
    gmail: tuple[FakeGmail, str], mail_settings: Settings, cipher: TokenCipher
) -> None:
    fake, url = gmail
    fake.add("m1", resource_file="gmail/message_full_mixed_alternative_plus_jpeg_attachments.json")
    fake.add("m2", resource_file="gmail/message_full_mixed_with_text_plain_attachment.json")
    fake.add("m3")
    mailbox = add_mailbox("gmail", cipher)

    run_gmail(mailbox, url, mail_settings, cipher)
    fake.add("m4")
    run_gmail(mailbox, url, mail_settings, cipher)

    rows = (
        Attachment.select(Attachment, Message)
        .join(Message)
        .order_by(Message.external_id, Attachment.id)
    )
    found = [
        (row.message.external_id, row.kind, row.content_type, row.size_bytes, row.path)
        for row in rows
    ]
    assert found == [
        ("m1", "image", "image/jpeg", 66308, ""),
        ("m1", "image", "image/jpeg", 100446, ""),
        ("m2", "document", "text/plain", 277400, ""),
    ]
    assert all(row.user_id == mailbox.user_id for row in rows)


def test_gmail_history_read_twice_applies_once(
    gmail: tuple[FakeGmail, str], mail_settings: Settings, cipher: TokenCipher
) -> None:
    fake, url = gmail
    fake.add("m1")
    fake.add("m2")
    mailbox = add_mailbox("gmail", cipher)
    run_gmail(mailbox, url, mail_settings, cipher)
    cursor = get_cursor(mailbox)
    fake.add("m3")
    fake.delete("m1")
    fake.relabel("m2", add=("STARRED",))

    run_gmail(mailbox, url, mail_settings, cipher)
    after_first = stored()
    SyncState.update(cursor=cursor).execute()
    again = run_gmail(mailbox, url, mail_settings, cipher)

    assert stored() == after_first
    assert again.stored == 0
    assert again.deleted == 0
    assert again.updated == 0
    assert again.fetched == 0
    assert Message.select().count() == 3


def test_gmail_expired_history_resyncs_once(
    gmail: tuple[FakeGmail, str], mail_settings: Settings, cipher: TokenCipher
) -> None:
    fake, url = gmail
    fake.add("m1")
    fake.add("m2")
    mailbox = add_mailbox("gmail", cipher)
    run_gmail(mailbox, url, mail_settings, cipher)
    fake.add("m3")
    fake.expire_history()
    fake.requests.clear()

    result = run_gmail(mailbox, url, mail_settings, cipher)

    assert result.full_sync is True
    assert result.stored == 1
    assert result.fetched == 1
    assert set(stored()) == {"m1", "m2", "m3"}
    assert Message.select().count() == 3
    assert fake.paths().count("/gmail/v1/users/me/history") == 1
    assert fake.paths().count("/gmail/v1/users/me/profile") == 1
    assert get_cursor(mailbox) == str(fake.history_id)
    follow_up = run_gmail(mailbox, url, mail_settings, cipher)
    assert follow_up.full_sync is False
    assert follow_up.stored == 0


def test_gmail_killed_half_way_then_rerun(
    gmail: tuple[FakeGmail, str],
    mail_settings: Settings,
    cipher: TokenCipher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, url = gmail
    for number in range(7):
        fake.add(f"m{number}", thread_id=f"t{number % 3}", days_ago=number + 1)
    mailbox = add_mailbox("gmail", cipher)
    real_insert = sync_module.insert_messages
    calls: list[int] = []

    def insert_then_die(rows: list[dict[str, Any]]) -> int:
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("Worker killed while storing.")
        return real_insert(rows)

    monkeypatch.setattr(sync_module, "insert_messages", insert_then_die)
    with pytest.raises(RuntimeError, match="Worker killed"):
        run_gmail(mailbox, url, mail_settings, cipher, chunk_size=3)

    assert len(stored()) == 3
    assert get_cursor(mailbox) is None
    monkeypatch.setattr(sync_module, "insert_messages", real_insert)
    rerun = run_gmail(mailbox, url, mail_settings, cipher, chunk_size=3)

    assert rerun.stored == 4
    assert rerun.fetched == 4
    assert set(stored()) == {f"m{number}" for number in range(7)}
    assert Message.select().count() == 7
    assert Conversation.select().count() == 3
    assert get_cursor(mailbox) == str(fake.history_id)


def test_gmail_skips_drafts_and_spam(
    gmail: tuple[FakeGmail, str], mail_settings: Settings, cipher: TokenCipher
) -> None:
    fake, url = gmail
    fake.add("m1")
    mailbox = add_mailbox("gmail", cipher)
    run_gmail(mailbox, url, mail_settings, cipher)
    fake.add("draft", labels=("DRAFT",))
    fake.add("spam", labels=("SPAM",))

    result = run_gmail(mailbox, url, mail_settings, cipher)

    assert result.skipped == 2
    assert set(stored()) == {"m1"}


def test_gmail_expired_token_refreshed_and_stored(
    gmail: tuple[FakeGmail, str], mail_settings: Settings, cipher: TokenCipher
) -> None:
    fake, url = gmail
    fake.add("m1")
    refreshed = {"access_token": "access-2", "expires_in": 3600, "token_type": "Bearer"}

    def token_route(request: Any) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, json.dumps(refreshed).encode()

    with serve(token_route) as token_url:
        token = make_token(f"{token_url}token", expires_at=NOW - timedelta(minutes=5))
        mailbox = add_mailbox("gmail", cipher, token)
        run_gmail(mailbox, url, mail_settings, cipher)

    saved = load_token(Mailbox.get_by_id(mailbox.id), cipher)
    assert saved.access_token == "access-2"
    assert saved.refresh_token == "refresh-1"
    assert saved.client_id == "client-1"
    assert "access-2" not in Mailbox.get_by_id(mailbox.id).token
    assert set(stored()) == {"m1"}


def test_gmail_revoked_refresh_raises(
    gmail: tuple[FakeGmail, str], mail_settings: Settings, cipher: TokenCipher
) -> None:
    fake, url = gmail
    body = json.dumps(
        {
            "error": "invalid_grant",
            "error_description": "Token has been expired or revoked.",
        }
    )
    with serve(lambda request: (400, {}, body.encode())) as token_url:
        token = make_token(f"{token_url}token", expires_at=NOW - timedelta(minutes=5))
        mailbox = add_mailbox("gmail", cipher, token)
        with pytest.raises(TokenRevoked) as raised:
            run_gmail(mailbox, url, mail_settings, cipher)

    assert raised.value.reason == "invalid_grant"
    assert fake.requests == []


def test_gmail_inactive_mailbox_rejected(
    db: peewee.Database, mail_settings: Settings, cipher: TokenCipher
) -> None:
    mailbox = add_mailbox("gmail", cipher)
    Mailbox.update(state="paused").execute()

    with pytest.raises(MailboxNotActive, match="paused"):
        sync_gmail(mailbox.id, settings=mail_settings, cipher=cipher)


# Outlook.


@pytest.fixture
def graph(db: peewee.Database) -> Iterator[FakeGraph]:
    fake = FakeGraph()
    with serve(fake.route) as url:
        fake.url = url
        yield fake


def run_outlook(
    mailbox: Mailbox, fake: FakeGraph, settings: Settings, cipher: TokenCipher
) -> Any:
    return sync_outlook(
        mailbox.id,
        settings=settings,
        cipher=cipher,
        graph_url=fake.url,
        page_size=2,
        clock=lambda: NOW,
    )


ROUND1 = (
    "graph/messages_delta_round1_page1.json",
    "graph/messages_delta_round1_page2.json",
    "graph/messages_delta_round1_page3_final_deltalink.json",
)
ROUND1_IDS = {
    "AAMkADNkNAAASq35xAAA=",
    "AQMkADNkNAAAVRMKAAAAA==",
    "AQMkADNkNAAAgWkAAAA",
    "AQMkADNkNAAAgWJAAAA",
    "AAMkADk0MGFkODE3LWEAAA=",
}
DELETED_ID = "AAMkADk0MGFkODE3LWE4MmYtNDRhOS0Dh_6qB-pB2Sa2pUum19a6YAAKnLuxoAAA="
MOVED_ID = "AAMkAGFAKEmovedOutOfInbox0001AAA="


def sent_page(fake: FakeGraph, *ids: str, token: str = "sent-1") -> dict[str, Any]:
    """Return a sentitems delta page with messages from the owner to a contact."""
    return {
        "value": [
            {
                "id": message_id,
                "conversationId": f"conv-{message_id}",
                "subject": "Re: Holiday hours update",
                "from": {"emailAddress": {"name": "Sam", "address": OWNER}},
                "toRecipients": [
                    {"emailAddress": {"name": "Ines", "address": "ines.k@example.com"}}
                ],
                "sentDateTime": "2026-11-19T10:00:00Z",
                "body": {"contentType": "text", "content": "Sure, see you Friday."},
            }
            for message_id in ids
        ],
        "@odata.deltaLink": fake.delta_link("sentitems", token),
    }


def moved_page(fake: FakeGraph, message_id: str) -> dict[str, Any]:
    return {
        "value": [{"id": message_id, "@removed": {"reason": "changed"}}],
        "@odata.deltaLink": fake.delta_link("inbox", "moved"),
    }


def test_outlook_delta_rounds(
    graph: FakeGraph, mail_settings: Settings, cipher: TokenCipher
) -> None:
    graph.queue("inbox", *ROUND1)
    graph.queue("sentitems", sent_page(graph, "SENT1", DELETED_ID))
    mailbox = add_mailbox("outlook", cipher)

    first = run_outlook(mailbox, graph, mail_settings, cipher)

    assert first.full_sync is True
    assert first.stored == 7
    assert set(stored("outlook")) == ROUND1_IDS | {"SENT1", DELETED_ID}
    assert Message.get(Message.external_id == "SENT1").direction == "outbound"
    assert stored("outlook")["AQMkADNkNAAAgWkAAAA"] == (False, ("inbox",))
    assert "deltatoken=GwcBoTmPuoGNlgXgF1nyUNMXY" in get_cursor(mailbox, "inbox")
    assert get_cursor(mailbox, "sentitems") == graph.delta_link("sentitems", "sent-1")

    graph.queue(
        "inbox", "graph/messages_delta_round2_removed_and_updated_isRead_as_string.json"
    )
    graph.queue("sentitems", sent_page(graph, token="sent-2"))
    second = run_outlook(mailbox, graph, mail_settings, cipher)

    assert second.full_sync is False
    assert second.stored == 0
    assert second.deleted == 1
    assert stored("outlook")[DELETED_ID] == (True, ("sentitems",))
    assert Message.select().where(Message.channel == "outlook").count() == 7
    inbox_requests = [r for r in graph.requests if "/mailFolders/inbox/" in r.path]
    assert inbox_requests[-1].query == {"$deltatoken": ["GwcBoTmPuoGNlgXgF1nyUNMXY"]}


def test_outlook_moved_out_kept_when_in_other_folder(
    graph: FakeGraph, mail_settings: Settings, cipher: TokenCipher
) -> None:
    both = {
        "value": [
            {
                "id": MOVED_ID,
                "subject": "Order",
                "from": {"emailAddress": {"address": "olu.a@example.com"}},
            },
            {
                "id": "ONLY-INBOX",
                "subject": "Hi",
                "from": {"emailAddress": {"address": "olu.a@example.com"}},
            },
        ],
        "@odata.deltaLink": graph.delta_link("inbox", "i1"),
    }
    graph.queue("inbox", both)
    graph.queue("sentitems", sent_page(graph, MOVED_ID))
    mailbox = add_mailbox("outlook", cipher)
    run_outlook(mailbox, graph, mail_settings, cipher)
    assert stored("outlook")[MOVED_ID] == (False, ("inbox", "sentitems"))

    graph.queue("inbox", "graph/messages_delta_removed_reason_changed_synthetic.json")
    graph.queue("sentitems", sent_page(graph, token="sent-2"))
    run_outlook(mailbox, graph, mail_settings, cipher)
    assert stored("outlook")[MOVED_ID] == (False, ("sentitems",))

    graph.queue("inbox", moved_page(graph, "ONLY-INBOX"))
    graph.queue("sentitems", sent_page(graph, token="sent-3"))
    result = run_outlook(mailbox, graph, mail_settings, cipher)
    assert stored("outlook")["ONLY-INBOX"] == (True, ())
    assert result.deleted == 1


def test_outlook_410_resyncs_without_duplicates(
    graph: FakeGraph, mail_settings: Settings, cipher: TokenCipher
) -> None:
    graph.queue("inbox", *ROUND1)
    graph.queue("sentitems", sent_page(graph, "SENT1"))
    mailbox = add_mailbox("outlook", cipher)
    run_outlook(mailbox, graph, mail_settings, cipher)
    gone = corpus("graph/error_410_sync_state_not_found.json")
    expired = (410, {}, json.dumps(gone).encode())
    graph.queue("inbox", expired, *ROUND1)
    graph.queue("sentitems", sent_page(graph, token="sent-2"))

    result = run_outlook(mailbox, graph, mail_settings, cipher)

    assert result.full_sync is True
    assert result.stored == 0
    assert Message.select().where(Message.channel == "outlook").count() == 6
    inbox_requests = [r for r in graph.requests if "/mailFolders/inbox/" in r.path]
    assert len(inbox_requests) == 3 + 1 + 3
    assert "deltatoken=GwcBoTmPuoGNlgXgF1nyUNMXY" in get_cursor(mailbox, "inbox")


def test_outlook_429_raises_and_keeps_finished_folders(
    graph: FakeGraph, mail_settings: Settings, cipher: TokenCipher
) -> None:
    throttled = corpus("graph/error_429_application_throttled_mailbox_concurrency.json")
    graph.queue("inbox", *ROUND1)
    graph.queue(
        "sentitems", (429, {"Retry-After": "7"}, json.dumps(throttled).encode())
    )
    mailbox = add_mailbox("outlook", cipher)

    with pytest.raises(ProviderRateLimited) as raised:
        run_outlook(mailbox, graph, mail_settings, cipher)

    assert raised.value.retry_after_ms == 7_000
    assert get_cursor(mailbox, "inbox") is not None
    assert get_cursor(mailbox, "sentitems") is None
    assert set(stored("outlook")) == ROUND1_IDS


def test_outlook_revoked_refresh_raises(
    graph: FakeGraph, mail_settings: Settings, cipher: TokenCipher
) -> None:
    rejected = corpus("graph/aad_token_endpoint_invalid_grant_AADSTS700082.json")
    graph.tokens.append((400, {}, json.dumps(rejected).encode()))
    token = make_token(
        f"{graph.url}common/oauth2/v2.0/token", expires_at=NOW - timedelta(minutes=5)
    )
    mailbox = add_mailbox("outlook", cipher, token)

    with pytest.raises(TokenRevoked) as raised:
        run_outlook(mailbox, graph, mail_settings, cipher)

    assert raised.value.reason == "invalid_grant"
    assert [r.path for r in graph.requests] == ["/common/oauth2/v2.0/token"]


@pytest.mark.parametrize(
    ("token_uri", "expected"),
    [
        (None, ("https://login.microsoftonline.com", "common")),
        (
            "https://login.microsoftonline.com/contoso/oauth2/v2.0/token",
            ("https://login.microsoftonline.com", "contoso"),
        ),
        (
            "http://127.0.0.1:9/common/oauth2/v2.0/token",
            ("http://127.0.0.1:9", "common"),
        ),
        ("https://example.com/token", ("https://login.microsoftonline.com", "common")),
    ],
)
def test_microsoft_authority_from_token_uri(
    token_uri: str | None, expected: tuple[str, str]
) -> None:
    assert microsoft_authority(token_uri) == expected
