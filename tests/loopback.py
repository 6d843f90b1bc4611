"""A real HTTP server on 127.0.0.1 for download tests: serves files, and misbehaves on demand.

Each route maps a URL path to ``(mode, body)``:

- ``"ok"``: the body, with its length;
- ``"truncate"``: announces the full length, sends half, closes the connection;
- ``"stall"``: sends half, then waits (until the server stops) -- for interrupting a client;
- a missing route: 404.

Used as a context manager; the server thread stops and the socket closes on exit.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        route = self.server.routes.get(self.path.split("?", 1)[0])
        self.server.requests.append(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        mode, body = route
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "ok":
            self.wfile.write(body)
            return
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        if mode == "stall":
            self.server.stopping.wait(60)
        self.close_connection = True

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def serve(self, path: str, body: bytes, mode: str = "ok") -> None:
        self.routes["/" + path.lstrip("/")] = (mode, body)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)
