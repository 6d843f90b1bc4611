"""Scripted participants and a server in a child process (pilots, tests, benchmarks).

:class:`StudyClient` makes the HTTP calls the participant page makes, over one
keep-alive connection, keeping the session cookie like a browser.
:class:`ServerProcess` runs ``tradeoffs study serve`` in a child process on a free port
of 127.0.0.1 and stops (or kills) it.

Example
-------
>>> with ServerProcess("study.sqlite") as server:              # doctest: +SKIP
...     client = StudyClient(server.url, token)
...     client.label_all(lambda state, png: 7)
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["Reply", "ServerProcess", "StudyClient"]


class Reply:
    """An HTTP reply: ``status``, ``headers`` (lower-case names) and ``body`` bytes."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> dict:
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:120]!r})"


class StudyClient:
    """One participant's HTTP session with a study server.

    Parameters
    ----------
    base_url : str
        ``http://host:port/``.
    token : str
        The participant's invite token.
    timeout : float
        Socket timeout in seconds.
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0):
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"base_url must be http://host:port/, got {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.token = token
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.requests = 0
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        """Send one request (reconnecting once if the kept-alive connection was closed)."""
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port,
                                                        timeout=self.timeout)
            try:
                self._conn.request(method, path, body=body, headers=headers)
                resp = self._conn.getresponse()
                data = resp.read()
                break
            except (ConnectionError, http.client.RemoteDisconnected,
                    http.client.CannotSendRequest):
                self.close()
                if attempt:
                    raise
        self.requests += 1
        for raw in resp.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(raw).items():
                self.cookies[name] = morsel.value
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post_json(self, path: str, obj: object) -> Reply:
        return self.request("POST", path, json.dumps(obj).encode(),
                            {"Content-Type": "application/json"})

    def api(self, name: str) -> str:
        return f"/api/p/{self.token}/{name}"

    def state(self) -> Reply:
        return self.request("GET", self.api("state"))

    def start(self) -> Reply:
        return self.post_json(self.api("start"), {})

    def image(self, state: dict) -> Reply:
        return self.request("GET", state["trial"]["image"])

    def answer(self, nonce: str, label: int, rt_ms: int | None = None) -> Reply:
        body = {"nonce": nonce, "label": label}
        if rt_ms is not None:
            body["rt_ms"] = rt_ms
        return self.post_json(self.api("answer"), body)

    def label_all(self, choose: Callable[[dict, bytes], int], *,
                  limit: int | None = None) -> int:
        """Open the page, start, and answer until finished (or ``limit`` answers): for
        each image, fetch its PNG and answer ``choose(state, png)``. Returns the number
        of answers recorded; raises ``RuntimeError`` on any unexpected reply."""
        page = self.request("GET", f"/p/{self.token}")
        if page.status != 200:
            raise RuntimeError(f"invite page: {page}")
        reply = self.start()
        done = 0
        while True:
            if reply.status != 200:
                raise RuntimeError(f"participant {self.token[:6]}...: {reply}")
            state = reply.json()
            if state["status"] == "finished" or (limit is not None and done >= limit):
                return done
            png = self.image(state)
            if png.status != 200:
                raise RuntimeError(f"image: {png}")
            reply = self.answer(state["trial"]["nonce"], choose(state, png.body), rt_ms=1)
            done += reply.status == 200


class ServerProcess:
    """``tradeoffs study serve STUDY`` (as ``python -m invariance_tradeoffs.simulations.study
    serve``) in a child process on ``host`` (a free port unless ``port`` is given); a
    context manager that stops it on exit.

    The child imports the same ``simulations`` package as this process. ``url`` is
    known once :meth:`start` returns (the server prints it when its socket listens).
    """

    def __init__(self, study: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 0,
                 extra_args: Sequence[str] = (), startup_timeout: float = 60.0):
        self.study = Path(study)
        self.host, self.port = host, port
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.url: str | None = None
        self.proc: subprocess.Popen | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def start(self) -> ServerProcess:
        env = dict(os.environ)  # the child imports the package as this process does
        cmd = [sys.executable, "-m", "invariance_tradeoffs.simulations.study", "serve",
               str(self.study),
               "--host", self.host, "--port", str(self.port), *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()
        while True:
            try:
                line = self._lines.get(timeout=self.startup_timeout)
            except queue.Empty:
                self.kill()
                raise RuntimeError(f"server did not start within {self.startup_timeout} s: "
                                   f"{''.join(self.output)}") from None
            if line is None:
                self.proc.wait()
                raise RuntimeError(f"server exited with {self.proc.returncode}: "
                                   f"{''.join(self.output)}")
            if line.startswith("serving on "):
                self.url = line.split()[2]
                self.port = int(urlsplit(self.url).port)
                return self

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to clean up (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 15 s; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
