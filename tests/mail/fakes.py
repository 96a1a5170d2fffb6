"""Stateful Gmail and Graph servers on loopback for the mailbox sync tests.

Message resources start from corpus files, so a test skips when the corpus
folder is absent. The Gmail server keeps messages and a history log and serves
``getProfile``, ``messages.list``, ``history.list`` and batch ``messages.get``.
The Graph server answers each folder's delta requests from a queue of pages and
the token endpoint from its own queue.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

CORPUS = Path(
    os.environ.get("WALLIE_CORPUS")
    or Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
)

#: Time the fake Gmail mailbox treats as now.
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

GRAPH = "https://graph.microsoft.com/"
CORPUS_FOLDER_URL = (
    "https://graph.microsoft.com/v1.0/me/mailfolders('AQMkADNkNAAAgEMAAAA')"
)
BOUNDARY = "batch_fake_boundary"
_BATCH_GET = re.compile(r"GET /gmail/v1/users/me/messages/([^?\s]+)\?")

Reply = tuple[int, dict[str, str], bytes]


def corpus(relative_path: str) -> dict[str, Any]:
    """Load a corpus JSON file without its ``_http`` annotation, or skip the test."""
    path = CORPUS / relative_path
    if not path.is_file():
        pytest.skip(f"Corpus file {path} is missing; set WALLIE_CORPUS to its folder.")

    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("_http", None)
    return data


@dataclass
class Recorded:
    """One request a fake server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes


@contextmanager
def serve(route: Callable[[Recorded], Reply]) -> Iterator[str]:
    """Serve ``route`` on 127.0.0.1 and yield the base URL, ending with ``/``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Recorded(self.command, parts.path, parse_qs(parts.query), body)
            status, headers, payload = route(request)
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _handle
        do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _json(status: int, body: Any) -> Reply:
    return status, {}, json.dumps(body).encode()


# Gmail.


@dataclass
class FakeGmail:
    """A Gmail mailbox: messages, a history log and an oldest usable history id."""

    owner: str = "sam@example.com"
    page_size: int = 2
    history_id: int = 1000
    oldest_history_id: int = 0
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, change: dict[str, Any]) -> None:
        self.history_id += 1
        self.history.append({"id": str(self.history_id), **change})

    def add(
        self,
        message_id: str,
        *,
        thread_id: str | None = None,
        sender: str = "ines.k@example.com",
        to: str | None = None,
        labels: tuple[str, ...] = ("INBOX", "UNREAD"),
        subject: str = "Quote for 40 chairs",
        text: str = "Can you send the quote by Friday?",
        days_ago: int = 1,
        resource_file: str = "gmail/message_full_single_part_text_plain_no_parts.json",
    ) -> None:
        """Add a message built from a corpus resource, as a new history record.

        ``text`` replaces the body of a single-part resource; a multipart one
        keeps its own parts.
        """
        resource = copy.deepcopy(corpus(resource_file))
        moment = NOW - timedelta(days=days_ago)
        headers = {
            "from": sender,
            "to": to or self.owner,
            "subject": subject,
            "date": moment.strftime("%a, %d %b %Y %H:%M:%S +0000"),
            "message-id": f"<{message_id}@mail.example.com>",
        }
        resource["payload"]["headers"] = [
            {
                "name": header["name"],
                "value": headers.get(header["name"].lower(), header["value"]),
            }
            for header in resource["payload"]["headers"]
        ]
        if not resource["payload"].get("parts"):
            resource["payload"]["body"]["data"] = base64.urlsafe_b64encode(
                text.encode()
            ).decode()
        resource.update(
            id=message_id,
            threadId=thread_id or message_id,
            labelIds=list(labels),
            internalDate=str(int(moment.timestamp() * 1000)),
        )
        with self._lock:
            self.messages[message_id] = resource
            stub = {
                "id": message_id,
                "threadId": resource["threadId"],
                "labelIds": list(labels),
            }
            self._record({"messages": [stub], "messagesAdded": [{"message": stub}]})

    def delete(self, message_id: str) -> None:
        """Delete a message for good, as a history record."""
        with self._lock:
            resource = self.messages.pop(message_id)
            stub = {"id": message_id, "threadId": resource["threadId"]}
            self._record({"messages": [stub], "messagesDeleted": [{"message": stub}]})

    def relabel(
        self,
        message_id: str,
        *,
        add: tuple[str, ...] = (),
        remove: tuple[str, ...] = (),
    ) -> None:
        """Change a message's labels, as history records."""
        with self._lock:
            resource = self.messages[message_id]
            labels = [label for label in resource["labelIds"] if label not in remove]
            labels += [label for label in add if label not in labels]
            resource["labelIds"] = labels
            stub = {
                "id": message_id,
                "threadId": resource["threadId"],
                "labelIds": labels,
            }
            if add:
                self._record(
                    {
                        "messages": [stub],
                        "labelsAdded": [{"message": stub, "labelIds": list(add)}],
                    }
                )
            if remove:
                self._record(
                    {
                        "messages": [stub],
                        "labelsRemoved": [{"message": stub, "labelIds": list(remove)}],
                    }
                )

    def expire_history(self) -> None:
        """Make every history id older than the current one unusable (404)."""
        with self._lock:
            self.oldest_history_id = self.history_id

    def paths(self) -> list[str]:
        """Return the paths of the requests received so far."""
        return [request.path for request in self.requests]

    def route(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            path = request.path
            if path.endswith("/profile"):
                return _json(
                    200, {"emailAddress": self.owner, "historyId": str(self.history_id)}
                )

            if path.endswith("/messages"):
                return self._list(request)

            if path.endswith("/history"):
                return self._history(request)

            if path == "/batch":
                return self._batch(request)

        return _json(404, {"error": {"code": 404, "message": f"No route for {path}."}})

    def _page(
        self, items: list[Any], request: Recorded
    ) -> tuple[list[Any], dict[str, str]]:
        offset = int(request.query.get("pageToken", ["0"])[0])
        page = items[offset : offset + self.page_size]
        extra = {}
        if offset + self.page_size < len(items):
            extra["nextPageToken"] = str(offset + self.page_size)
        return page, extra

    def _list(self, request: Recorded) -> Reply:
        after_ms = int(request.query["q"][0].removeprefix("after:")) * 1000
        ids = [
            {"id": resource["id"], "threadId": resource["threadId"]}
            for resource in reversed(self.messages.values())
            if int(resource["internalDate"]) >= after_ms
            and "SPAM" not in resource["labelIds"]
        ]
        page, extra = self._page(ids, request)
        return _json(
            200, {"messages": page, **extra} if page else {"resultSizeEstimate": 0}
        )

    def _history(self, request: Recorded) -> Reply:
        start = int(request.query["startHistoryId"][0])
        if start < self.oldest_history_id:
            return _json(404, corpus("gmail/error_404_history_expired_notFound.json"))

        records = [record for record in self.history if int(record["id"]) > start]
        page, extra = self._page(records, request)
        body: dict[str, Any] = {"historyId": str(self.history_id), **extra}
        if page:
            body["history"] = page
        return _json(200, body)

    def _batch(self, request: Recorded) -> Reply:
        chunks = []
        not_found = json.dumps(corpus("gmail/error_404_message_get_not_found.json"))
        for message_id in _BATCH_GET.findall(request.body.decode()):
            resource = self.messages.get(message_id)
            status, body = (200, json.dumps(resource)) if resource else (404, not_found)
            chunks.append(
                f"--{BOUNDARY}\r\nContent-Type: application/http\r\n"
                f"Content-ID: <response-fake + {message_id}>\r\n\r\n"
                f"HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\n\r\n"
                f"{body}\r\n"
            )
        payload = "".join(chunks) + f"--{BOUNDARY}--\r\n"
        return (
            200,
            {"Content-Type": f"multipart/mixed; boundary={BOUNDARY}"},
            payload.encode(),
        )


# Graph.


@dataclass
class FakeGraph:
    """Graph delta pages by folder and token endpoint replies, served in order.

    Page bodies are corpus files or dicts. Links in them are rewritten to this
    server and to the folder, and entries get a ``receivedDateTime`` when they
    lack one: the client selects it, while the documentation's example did not.
    """

    url: str = ""
    pages: dict[str, deque[Reply | dict[str, Any] | str]] = field(default_factory=dict)
    tokens: deque[Reply] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)

    def queue(self, folder: str, *pages: dict[str, Any] | str | Reply) -> None:
        """Queue delta pages of ``folder``: corpus names, bodies or raw replies."""
        self.pages.setdefault(folder, deque()).extend(pages)

    def route(self, request: Recorded) -> Reply:
        self.requests.append(request)
        if request.path.endswith("/oauth2/v2.0/token"):
            return self.tokens.popleft()

        match = re.search(r"/mailFolders/([^/]+)/messages/delta", request.path)
        folder = match.group(1) if match else ""
        pending = self.pages.get(folder)
        if not pending:
            return _json(
                500, {"error": {"code": "NoPage", "message": f"No page for {folder}."}}
            )

        page = pending.popleft()
        if isinstance(page, tuple):
            return page

        body = corpus(page) if isinstance(page, str) else copy.deepcopy(page)
        return 200, {}, self._rewrite(body, folder).encode()

    def _rewrite(self, body: dict[str, Any], folder: str) -> str:
        for item in body.get("value", []):
            if "@removed" not in item and not item.get("receivedDateTime"):
                item["receivedDateTime"] = "2026-11-19T09:30:00Z"
        text = json.dumps(body)
        text = text.replace(
            CORPUS_FOLDER_URL, f"{self.url}v1.0/me/mailFolders/{folder}"
        )
        return text.replace(GRAPH, self.url)

    def delta_link(self, folder: str, token: str) -> str:
        """Return a delta link of this server for ``folder``."""
        return (
            f"{self.url}v1.0/me/mailFolders/{folder}/messages/delta?$deltatoken={token}"
        )
