"""Count the Gmail API requests of an incremental sync against the minimum.

A loopback HTTP server simulates a mailbox with MESSAGES new messages spread over
history pages. One in RATE_LIMIT_EVERY batch parts answers 429 "Too many
concurrent requests for user" once, as Gmail does under load, so the count
includes the retries. The client lists the history and fetches every added
message; the script prints the request count next to the minimum (history pages
plus one batch per 50 messages) and writes both to docs/benchmarks.md.

Run: .venv/bin/python benchmarks/gmail_request_count.py [--messages N] [--no-write]
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import platform
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httplib2

from wallie.mail.gmail import GmailClient, required_requests

#: History records per history.list page; Gmail's maximum page size is 500.
HISTORY_PAGE_SIZE = 500

#: Every n-th batch part is rate-limited on its first request.
RATE_LIMIT_EVERY = 100

#: Allowed overhead over the minimum request count, as a fraction.
TARGET_OVERHEAD = 0.10

BOUNDARY = "benchmark_boundary"
SECTION = "## Gmail request count"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
_BATCH_GET = re.compile(r"GET /gmail/v1/users/me/messages/([^?\s]+)\?")


class FakeMailbox:
    """Mailbox state served by the loopback server."""

    def __init__(self, message_count: int) -> None:
        self.ids = [f"msg{number:05d}" for number in range(message_count)]
        every = RATE_LIMIT_EVERY
        self.limited_once: set[str] = set(self.ids[every - 1 :: every])
        self.history_pages = max(math.ceil(message_count / HISTORY_PAGE_SIZE), 1)
        self.lock = threading.Lock()

    def history_page(self, page_token: str | None) -> dict[str, Any]:
        page = int(page_token or 0)
        start = page * HISTORY_PAGE_SIZE
        records = [
            {
                "id": str(1000 + start + offset),
                "messagesAdded": [{"message": {"id": mid}}],
            }
            for offset, mid in enumerate(self.ids[start : start + HISTORY_PAGE_SIZE])
        ]
        body: dict[str, Any] = {"historyId": str(1000 + len(self.ids))}
        if records:
            body["history"] = records
        if page + 1 < self.history_pages:
            body["nextPageToken"] = str(page + 1)
        return body

    def message(self, message_id: str) -> dict[str, Any]:
        text = f"Message {message_id}".encode()
        return {
            "id": message_id,
            "threadId": message_id,
            "labelIds": ["INBOX"],
            "internalDate": "1715000000000",
            "payload": {
                "mimeType": "text/plain",
                "headers": [{"name": "Subject", "value": message_id}],
                "body": {"data": base64.urlsafe_b64encode(text).decode()},
            },
        }

    def batch_part(self, message_id: str) -> str:
        with self.lock:
            limited = message_id in self.limited_once
            self.limited_once.discard(message_id)

        if limited:
            status = "429 Too Many Requests"
            body = {
                "error": {
                    "code": 429,
                    "message": "Too many concurrent requests for user",
                    "errors": [{"reason": "rateLimitExceeded"}],
                }
            }
            extra = "Retry-After: 0\r\n"
        else:
            status, body, extra = "200 OK", self.message(message_id), ""

        return (
            f"--{BOUNDARY}\r\nContent-Type: application/http\r\n"
            f"Content-ID: <response-bench + {message_id}>\r\n\r\n"
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}\r\n"
            f"{json.dumps(body)}\r\n"
        )


def serve(mailbox: FakeMailbox) -> ThreadingHTTPServer:
    """Start the loopback server on a free port."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, content_type: str, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            token = query.get("pageToken", [None])[0]
            page = json.dumps(mailbox.history_page(token)).encode()
            self._reply("application/json", page)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            parts = [mailbox.batch_part(mid) for mid in _BATCH_GET.findall(body)]
            payload = ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()
            self._reply(f"multipart/mixed; boundary={BOUNDARY}", payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(message_count: int) -> dict[str, int]:
    """Run one incremental sync and return the request figures."""
    mailbox = FakeMailbox(message_count)
    server = serve(mailbox)
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/"
        client = GmailClient(
            httplib2.Http(timeout=30),
            account_id="benchmark",
            api_endpoint=endpoint,
            sleep=lambda seconds: None,
        )
        changes = client.list_history("1000")
        result = client.fetch_messages(changes.added_ids)
    finally:
        server.shutdown()
        server.server_close()

    if len(result.messages) != message_count:
        fetched = len(result.messages)
        raise RuntimeError(f"Fetched {fetched} of {message_count} messages.")

    return {
        "messages": message_count,
        "history_pages": changes.pages,
        "batches": client.counter.by_kind.get("batch", 0),
        "requests": client.counter.total,
        "minimum": required_requests(changes.pages, message_count),
        "rate_limited_parts": message_count // RATE_LIMIT_EVERY,
    }


def render(figures: dict[str, int], command: str) -> str:
    """Render the docs section."""
    overhead = figures["requests"] / figures["minimum"] - 1
    machine = (
        f"{platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    return "\n".join(
        [
            SECTION,
            "",
            "Requests of one incremental Gmail sync against a loopback server that "
            f"simulates {figures['messages']} new messages on history pages of "
            f"{HISTORY_PAGE_SIZE} records, with one in {RATE_LIMIT_EVERY} batch parts "
            "rate-limited once (429 with `Retry-After: 0`).",
            "",
            f"- Command: `{command}`",
            f"- Machine: {machine}",
            f"- History pages: {figures['history_pages']}",
            f"- Batch requests: {figures['batches']}",
            f"- Requests in total: {figures['requests']}",
            f"- Minimum (history pages + ceil(messages / 50)): {figures['minimum']}",
            f"- Overhead: {overhead:.1%} (target: at most {TARGET_OVERHEAD:.0%})",
            f"- Rate-limited parts, each sent again: {figures['rate_limited_parts']}",
            "",
            "The count does not depend on the machine: it is fixed by the page size, "
            "the batch size of 50 and the simulated rate limits. Retried ids join the "
            "next batch, so only the retry of a part in the last batch costs a "
            "request of its own; without rate limits the count equals the minimum.",
            "",
        ]
    )


def write_section(section: str) -> None:
    """Replace or append this benchmark's section in docs/benchmarks.md."""
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n\n"
    start = text.find(SECTION)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        rest = "" if end == -1 else text[end + 1 :]
        text = text[:start] + section + ("\n" + rest if rest else "")

    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the figures and update the docs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--messages", type=int, default=1000, help="Number of new messages to sync."
    )
    parser.add_argument(
        "--no-write", action="store_true", help="Print only; leave the docs alone."
    )
    args = parser.parse_args(argv)

    figures = run(args.messages)
    for name, value in figures.items():
        print(f"{name}: {value}")

    overhead = figures["requests"] / figures["minimum"] - 1
    print(f"overhead: {overhead:.1%}")
    if not args.no_write:
        command = "python benchmarks/gmail_request_count.py"
        if args.messages != 1000:
            command += f" --messages {args.messages}"
        write_section(render(figures, command))

    return 0 if overhead <= TARGET_OVERHEAD else 1


if __name__ == "__main__":
    sys.exit(main())
