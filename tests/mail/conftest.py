"""Fixtures for the mail provider tests: the shared corpus and a loopback HTTP server.

The corpus folder sits next to the repository (``../shared/corpus``) and can be
moved with ``WALLIE_CORPUS``. Tests that need it are skipped when it is absent.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

DEFAULT_CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def corpus_root() -> Path:
    """Return the corpus folder, from ``WALLIE_CORPUS`` or next to the repository."""
    return Path(os.environ.get("WALLIE_CORPUS", DEFAULT_CORPUS))


def load_corpus(relative_path: str) -> dict[str, Any]:
    """Load a corpus JSON file without its ``_http`` annotation, or skip the test."""
    path = corpus_root() / relative_path
    if not path.is_file():
        pytest.skip(f"Corpus file {path} is missing; set WALLIE_CORPUS to its folder.")

    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("_http", None)
    return data


def corpus_bytes(relative_path: str) -> bytes:
    """Return a corpus JSON file as a response body, without ``_http``."""
    return json.dumps(load_corpus(relative_path)).encode()


@dataclass
class RecordedRequest:
    """One request the loopback server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


Response = tuple[int, dict[str, str], bytes]
Route = Callable[[RecordedRequest], Response]


@dataclass
class LoopbackServer:
    """HTTP server on 127.0.0.1 that answers with ``route`` and records requests.

    ``max_in_flight`` is the largest number of requests handled at once.
    """

    route: Route
    requests: list[RecordedRequest] = field(default_factory=list)
    max_in_flight: int = 0
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _handler_for(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={key.lower(): value for key, value in self.headers.items()},
                body=body,
            )
            server.enter()
            try:
                with server._lock:
                    server.requests.append(request)
                status, headers, payload = server.route(request)
            finally:
                server.leave()

            self.send_response(status)
            headers = {"Content-Type": "application/json", **headers}
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _handle
        do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def loopback() -> Iterator[Callable[[Route], LoopbackServer]]:
    """Start loopback servers for a test and stop them afterwards."""
    started: list[ThreadingHTTPServer] = []

    def start(route: Route) -> LoopbackServer:
        server = LoopbackServer(route=route)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(server))
        httpd.daemon_threads = True
        server.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        return server

    yield start

    for httpd in started:
        httpd.shutdown()
        httpd.server_close()
