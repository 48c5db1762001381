"""A real HTTP server on 127.0.0.1 that records webhook posts and answers as a test scripts it."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookServer:
    """Records every POST; answers with the scripted statuses in order, then `default_status`."""

    def __init__(self, statuses: list[int] | None = None, default_status: int = 200) -> None:
        self.statuses = list(statuses or [])
        self.default_status = default_status
        self.requests: list[dict[str, Any]] = []  # every attempt, whatever it was answered
        self.delivered: list[dict[str, Any]] = []  # the bodies answered with 2xx
        self.release = threading.Event()  # handlers wait on this when `hold` is set
        self.hold = False
        self.lock = threading.Lock()
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.hold:
                    outer.release.wait(30)
                with outer.lock:
                    outer.requests.append(body)
                    outer.headers.append(dict(self.headers))
                    status = outer.statuses.pop(0) if outer.statuses else outer.default_status
                    if 200 <= status < 300:
                        outer.delivered.append(body)
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    @contextmanager
    def running(self) -> Iterator[WebhookServer]:
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.release.set()
            self.httpd.shutdown()
            self.httpd.server_close()
            thread.join(5)
