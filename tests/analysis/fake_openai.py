"""A loopback HTTP server that speaks enough of the Chat Completions API.

Each test queues replies (status, headers, JSON body); the server answers
requests in order and records every request's path, headers and JSON body.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """A scripted HTTP reply."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    """A request the server received, with header names in lower case."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeOpenAI:
    """The server's state: queued replies and received requests."""

    base_url: str = ""
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)

    def queue(self, reply: Reply) -> None:
        """Reply to the next request with ``reply``."""
        self.replies.append(reply)


def completion(
    content: str, prompt_tokens: int = 1200, completion_tokens: int = 300
) -> dict[str, Any]:
    """Return a Chat Completions body whose message content is ``content``."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1764849600,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_body(message: str, error_type: str, code: str | None) -> dict[str, Any]:
    """Return an error body in the shape the OpenAI API sends."""
    return {
        "error": {"message": message, "type": error_type, "param": None, "code": code}
    }


def _handler(state: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server hook name
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            headers = {name.lower(): value for name, value in self.headers.items()}
            state.requests.append(RecordedRequest(self.path, headers, body))
            reply = (
                state.replies.popleft()
                if state.replies
                else Reply(500, error_body("No reply queued.", "server_error", None))
            )
            payload = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve() -> Iterator[FakeOpenAI]:
    """Run the fake API on 127.0.0.1 on a free port until the block ends."""
    state = FakeOpenAI()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
