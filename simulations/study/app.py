"""The web application: invite links, one image at a time, the admin page.

A Starlette application served by uvicorn (:func:`serve`, 127.0.0.1 by default). Routes:

=====================================  =======================================================
``GET  /``                             a static page (open your invite link)
``GET  /static/study.css|study.js``    the page's style and script (constants in memory)
``GET  /p/{token}``                    the participant page (404 for an unknown token)
``GET  /api/p/{token}/state``          progress and the current trial (JSON)
``POST /api/p/{token}/start``          claims the invite for this browser (a session cookie)
``GET  /api/p/{token}/image/{nonce}``  the PNG of the current image only
``POST /api/p/{token}/answer``         ``{"nonce", "label", "rt_ms"?}`` -> the next state
``GET  /admin/{token}``                progress per participant and image, export links
``GET  /admin/{token}/results.json``   :meth:`StudyResults.to_dict`
``GET  /admin/{token}/responses.csv``  raw responses; ``counts.csv``: the counts matrix
=====================================  =======================================================

Security model: the study file is the only thing the server reads (images and pages come
from the database or from constants: no route maps a request to a path). Invite and
admin tokens are 192-bit random strings stored as SHA-256 hashes. The first browser to
press Start on an invite holds it (an HttpOnly, SameSite=Strict cookie whose hash is
stored); another browser with the same link is refused (409) until the researcher
reissues the link (``tradeoffs study invite``). A participant only ever receives the
current image as a PNG and its progress -- never the source label, the attack's target
or whether an image is an attention check. Refusals (unknown token 404, admin token 403,
another browser 409, a label outside 0..9/-1 422, an image not assigned 404, a replayed
or duplicate answer 409, a body over :data:`MAX_BODY` bytes 413, not JSON 415, malformed
JSON 400, headers over 16 KiB 431) happen before any write or roll back, so nothing is
written. Every answer is
committed (``synchronous=FULL``) before the response naming the next image is sent.
Responses carry a strict Content-Security-Policy, ``no-store`` and ``no-referrer`` (the
token is in the URL).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from invariance_tradeoffs.simulations.study import data as study_data
from invariance_tradeoffs.simulations.study import pages, store
from invariance_tradeoffs.simulations.study.store import Refused

__all__ = ["MAX_BODY", "SECURITY_HEADERS", "StudyDB", "create_app", "serve"]

#: Largest request body accepted (bytes); an answer is about 80 bytes.
MAX_BODY = 1024
#: Largest total size of the request headers (bytes).
MAX_HEADER_BYTES = 16 * 1024
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
SESSION_COOKIE = "study_session"
#: Cookie lifetime: a participant may come back within 30 days in the same browser.
SESSION_MAX_AGE = 30 * 24 * 3600
MAX_RT_MS = 24 * 3600 * 1000

SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


class StudyDB:
    """One study file: a SQLite connection per server thread, and one write lock."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = threading.Lock()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self.title = str(store.read_meta(self.conn()).get("title", self.path.name))

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = store.connect(self.path)
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()


class _Guard:
    """ASGI middleware: refuses requests whose headers exceed :data:`MAX_HEADER_BYTES`
    (431) and adds :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = sum(len(k) + len(v) for k, v in scope.get("headers", []))
        if size > MAX_HEADER_BYTES:
            body = b'{"error": "request headers too large"}'
            await send({"type": "http.response.start", "status": 431, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()), *self.extra]})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in self.extra if k not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _checked_token(token: str, status: int = 404) -> str:
    if not TOKEN.match(token):
        raise Refused(status, "unknown invite link" if status == 404 else
                      "admin token required")
    return token


async def read_body(request: object, limit: int = MAX_BODY) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (announced or sent)."""
    length = request.headers.get("content-length")  # type: ignore[attr-defined]
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise Refused(413 if length.isdigit() else 400,
                      f"request body larger than {limit} bytes" if length.isdigit()
                      else "malformed Content-Length")
    body = bytearray()
    async for chunk in request.stream():  # type: ignore[attr-defined]
        body += chunk
        if len(body) > limit:
            raise Refused(413, f"request body larger than {limit} bytes")
    return bytes(body)


def parse_json_object(body: bytes, content_type: str | None) -> dict:
    """A JSON object from a request body: 415 unless JSON, 400 when malformed."""
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        raise Refused(415, "send JSON with Content-Type: application/json")
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "malformed JSON") from None
    if not isinstance(obj, dict):
        raise Refused(400, "the body must be a JSON object")
    return obj


def parse_answer(obj: dict) -> tuple[str, int, int | None]:
    """``(nonce, label, rt_ms)`` of an answer object, or :class:`Refused` (400/422)."""
    extra = sorted(set(obj) - {"nonce", "label", "rt_ms"})
    if extra:
        raise Refused(400, f"unexpected fields {extra}")
    nonce = obj.get("nonce")
    if not isinstance(nonce, str) or not TOKEN.match(nonce):
        raise Refused(400, "'nonce' is missing or malformed")
    label = obj.get("label")
    if isinstance(label, bool) or not isinstance(label, int) or not -1 <= label <= 9:
        raise Refused(422, "'label' must be an integer 0-9, or -1 for not a digit / "
                           "can't tell")
    rt_ms = obj.get("rt_ms")
    if rt_ms is not None and (isinstance(rt_ms, bool) or not isinstance(rt_ms, int)
                              or not 0 <= rt_ms <= MAX_RT_MS):
        raise Refused(422, f"'rt_ms' must be an integer in 0..{MAX_RT_MS}")
    return nonce, label, rt_ms


def participant_state(conn: sqlite3.Connection, participant: store.Participant,
                      token: str) -> dict:
    """What the participant page may know: status, progress, the current trial."""
    answered, total = store.progress(conn, participant.id)
    if participant.session_hash is None:
        return {"status": "not_started", "answered": answered, "total": total, "trial": None}
    trial = store.current_trial(conn, participant.id)
    if trial is None:
        return {"status": "finished", "answered": answered, "total": total, "trial": None}
    return {"status": "labelling", "answered": answered, "total": total,
            "trial": {"nonce": trial.nonce, "image": f"/api/p/{token}/image/{trial.nonce}"}}


def create_app(path: str | Path, *, max_body: int = MAX_BODY):
    """The ASGI application serving the study file ``path`` (checked to be a study)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    db = StudyDB(path)

    def refusal(exc: Refused) -> JSONResponse:
        body = {"error": exc.message, **({"retry_state": True} if exc.retry_state else {})}
        return JSONResponse(body, status_code=exc.status)

    def api(handler: Callable) -> Callable:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except Refused as exc:
                return refusal(exc)
        return endpoint

    def session_of(request: Request) -> str | None:
        return request.cookies.get(SESSION_COOKIE)

    async def index(request: Request) -> Response:
        return HTMLResponse(pages.INDEX_HTML)

    async def css(request: Request) -> Response:
        return Response(pages.CSS, media_type="text/css")

    async def script(request: Request) -> Response:
        return Response(pages.SCRIPT, media_type="text/javascript")

    async def participant_page(request: Request) -> Response:
        try:
            token = _checked_token(request.path_params["token"])
            await run_in_threadpool(lambda: store.find_participant(db.conn(), token))
        except Refused as exc:
            return HTMLResponse(pages.message_html("Invite link not valid", exc.message),
                                status_code=exc.status)
        return HTMLResponse(pages.PARTICIPANT_HTML)

    @api
    async def state(request: Request) -> Response:
        token = _checked_token(request.path_params["token"])
        session = session_of(request)

        def work() -> dict:
            conn = db.conn()
            who = store.find_participant(conn, token)
            if who.session_hash is not None:
                store.check_session(who, session)
            return participant_state(conn, who, token)

        return JSONResponse(await run_in_threadpool(work))

    @api
    async def start(request: Request) -> Response:
        token = _checked_token(request.path_params["token"])
        parse_json_object(await read_body(request, max_body),
                          request.headers.get("content-type"))
        session = session_of(request)

        def work() -> tuple[dict, str | None]:
            conn = db.conn()
            who = store.find_participant(conn, token)
            fresh = store.claim(conn, db.lock, who, session)
            return participant_state(conn, store.find_participant(conn, token), token), fresh

        body, fresh = await run_in_threadpool(work)
        response = JSONResponse(body)
        if fresh is not None:
            response.set_cookie(SESSION_COOKIE, fresh, max_age=SESSION_MAX_AGE,
                                path=f"/api/p/{token}/", httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
        return response

    @api
    async def image(request: Request) -> Response:
        token = _checked_token(request.path_params["token"])
        nonce = request.path_params["nonce"]
        session = session_of(request)
        if not TOKEN.match(nonce):
            raise Refused(404, "no such image is waiting for you")

        def work() -> bytes:
            conn = db.conn()
            who = store.find_participant(conn, token)
            store.check_session(who, session)
            return store.trial_png(conn, who.id, nonce)

        return Response(await run_in_threadpool(work), media_type="image/png")

    @api
    async def answer(request: Request) -> Response:
        token = _checked_token(request.path_params["token"])
        body = await read_body(request, max_body)
        content_type = request.headers.get("content-type")
        session = session_of(request)

        def work() -> dict:
            conn = db.conn()
            who = store.find_participant(conn, token)
            store.check_session(who, session)
            nonce, label, rt_ms = parse_answer(parse_json_object(body, content_type))
            store.record_answer(conn, db.lock, who.id, nonce, label, rt_ms)
            return participant_state(conn, who, token)

        return JSONResponse(await run_in_threadpool(work))

    def admin_check(request: Request) -> sqlite3.Connection:
        conn = db.conn()
        store.check_admin(conn, _checked_token(request.path_params["token"], 403))
        return conn

    async def admin_page(request: Request) -> Response:
        from invariance_tradeoffs.simulations.study.results import summarise

        def work() -> str:
            conn = admin_check(request)
            res = summarise(study_data.read_study(conn))
            parts = res.participants()
            summary = (f"{sum(p['answered'] > 0 for p in parts)} of {len(parts)} participants "
                       f"started, {sum(p['finished'] for p in parts)} finished; "
                       f"{res.n_responses} of {int(res.data.assigned.sum())} answers "
                       f"received; {int((~res.kept).sum())} participants currently "
                       f"excluded. {res.rule.describe()}")
            return pages.admin_html(db.title, request.path_params["token"], summary, parts,
                                    study_data.item_progress(conn))

        try:
            return HTMLResponse(await run_in_threadpool(work))
        except Refused as exc:
            return HTMLResponse(pages.message_html("Admin", exc.message),
                                status_code=exc.status)

    @api
    async def admin_export(request: Request) -> Response:
        from invariance_tradeoffs.simulations.study.exports import counts_csv, responses_csv
        from invariance_tradeoffs.simulations.study.results import summarise

        kind = request.path_params["kind"]
        if kind not in ("results.json", "responses.csv", "counts.csv"):
            raise Refused(404, "no such export: results.json, responses.csv or counts.csv")

        def work() -> Response:
            res = summarise(study_data.read_study(admin_check(request)))
            if kind == "results.json":
                return JSONResponse(res.to_dict())
            text = responses_csv(res) if kind == "responses.csv" else counts_csv(res)
            return Response(text, media_type="text/csv", headers={
                "content-disposition": f'attachment; filename="{kind}"'})

        return await run_in_threadpool(work)

    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        yield
        db.close()

    routes = [
        Route("/", index),
        Route("/static/study.css", css),
        Route("/static/study.js", script),
        Route("/p/{token}", participant_page),
        Route("/api/p/{token}/state", state),
        Route("/api/p/{token}/start", start, methods=["POST"]),
        Route("/api/p/{token}/image/{nonce}", image),
        Route("/api/p/{token}/answer", answer, methods=["POST"]),
        Route("/admin/{token}", admin_page),
        Route("/admin/{token}/{kind:str}", admin_export),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.db = db
    return _Guard(app)


def _listen(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on --host {host} --port {port}: {exc}") from exc
    sock.listen(512)
    return sock


def serve(path: str | Path, host: str = "127.0.0.1", port: int = 8000, *,
          announce: Callable[[str], None] = print, limit_concurrency: int = 256) -> None:
    """Serve the study until interrupted (Ctrl-C / SIGTERM finish the open requests).

    The socket is bound and listening before ``announce(base_url)`` is called, so a
    client may connect as soon as the URL is printed. ``port=0`` picks a free port.
    """
    import uvicorn

    app = create_app(path)
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                            proxy_headers=False, ws="none", lifespan="on",
                            limit_concurrency=limit_concurrency, timeout_keep_alive=5)
    url_host = f"[{host}]" if ":" in host else host
    announce(f"http://{url_host}:{bound}/")
    uvicorn.Server(config).run(sockets=[sock])
