"""A loopback HTTP server that speaks the audio transcription API.

It accepts ``POST /v1/audio/transcriptions`` with a multipart form, records
each request, and replies with the next scripted response, or with
``{"text": "reply N"}`` once the script is used up.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted response."""

    status: int = 200
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Upload:
    """One received transcription request."""

    path: str
    authorization: str | None
    fields: dict[str, str]
    filename: str | None
    content_type: str | None
    file: bytes


class FakeTranscriptionServer:
    """Record requests and play back scripted replies."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.uploads: list[Upload] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def next_reply(self) -> Reply:
        with self.lock:
            if self.script:
                return self.script.pop(0)
            return Reply(body={"text": f"reply {len(self.uploads)}"})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                upload = parse_upload(
                    self.path,
                    self.headers.get("authorization"),
                    self.headers.get("content-type", ""),
                    body,
                )
                with server.lock:
                    server.uploads.append(upload)
                reply = server.next_reply()
                if reply.delay_s:
                    server.stop.wait(reply.delay_s)
                if self.path != "/v1/audio/transcriptions":
                    reply = Reply(404, {"error": {"message": "Unknown path."}})

                payload = json.dumps(reply.body or {"text": ""}).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def parse_upload(
    path: str, authorization: str | None, content_type: str, body: bytes
) -> Upload:
    """Split a multipart form into its text fields and its file."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    filename = None
    file_type = None
    file = b""
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            filename = part.get_filename()
            file_type = part.get_content_type()
            file = payload
        else:
            fields[str(name)] = payload.decode()

    return Upload(path, authorization, fields, filename, file_type, file)


@contextmanager
def running_server() -> Iterator[FakeTranscriptionServer]:
    """Run a fake server on a free loopback port for the block's duration."""
    server = FakeTranscriptionServer()
    thread = threading.Thread(
        target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=10)
