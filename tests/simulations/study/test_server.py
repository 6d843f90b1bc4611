"""The study web server, for real: a uvicorn process on a free port of 127.0.0.1.

Every refusal of the security model (unknown or reused tokens, labels outside the allowed
set, images not assigned, replays and duplicates, oversized or malformed requests, the
admin token, paths outside the study) is checked to answer with its status and to write
nothing; then a kill -9 and restart, and 20 participants labelling at once."""

from __future__ import annotations

import socket
import threading
import time

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from invariance_tradeoffs.simulations.study import store  # noqa: E402
from invariance_tradeoffs.simulations.study.client import ServerProcess, StudyClient  # noqa: E402
from tests.study_helpers import item_of_nonce, make_study  # noqa: E402


def snapshot(path) -> tuple:
    """Everything a request may write: responses, participants' claims and progress."""
    conn = store.connect(path)
    try:
        return (conn.execute("SELECT * FROM responses ORDER BY assignment_id").fetchall(),
                conn.execute("SELECT * FROM participants ORDER BY id").fetchall(),
                conn.execute("SELECT COUNT(*) FROM assignments").fetchone())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A 4-participant study, its server (stopped after the module) and the participants'
    clients, each with the invite started (claimed) in its own "browser"."""
    path = tmp_path_factory.mktemp("study") / "s.study"
    study = make_study(path, n=10, participants=4, k=2, rate=0.2)
    with ServerProcess(path) as server:
        clients = [StudyClient(server.url, t) for t in study.tokens]
        for c in clients:
            assert c.start().status == 200
        yield study, server, clients


@pytest.fixture
def unchanged(served):
    """Asserts at the end of the test that the study file was not written."""
    before = snapshot(served[0].path)
    yield
    assert snapshot(served[0].path) == before


def started(served, p: int) -> tuple[StudyClient, dict]:
    """Participant ``p``'s client and current state."""
    client = served[2][p]
    reply = client.state()
    assert reply.status == 200, reply
    return client, reply.json()


def test_static_pages_and_headers(served):
    server = served[1]
    client = StudyClient(server.url, "x" * 20)
    page = client.request("GET", "/")
    assert page.status == 200 and b"invite link" in page.body
    for name, header in [("content-security-policy", "default-src 'none'"),
                         ("x-content-type-options", "nosniff"),
                         ("referrer-policy", "no-referrer"), ("cache-control", "no-store")]:
        assert header in page.headers[name]
    assert "server" not in page.headers
    assert client.request("GET", "/static/study.js").status == 200
    assert client.request("GET", "/static/study.css").status == 200
    assert client.request("GET", "/nowhere").status == 404
    assert client.request("DELETE", "/").status == 405


def test_unknown_token_is_refused(served, unchanged):
    server = served[1]
    for token in ["A" * 32, "short", "bad$token$" * 3]:
        client = StudyClient(server.url, token)
        assert client.request("GET", f"/p/{token}").status == 404
        for reply in (client.state(), client.start(),
                      client.answer("N" * 32, 3), client.request(
                          "GET", f"/api/p/{token}/image/{'N' * 32}")):
            assert reply.status == 404, reply
            assert "unknown invite link" in reply.json()["error"]


def test_participant_sees_only_the_image_and_progress(served):
    client, state = started(served, 0)
    assert set(state) == {"status", "answered", "total", "trial"}
    assert set(state["trial"]) == {"nonce", "image"}
    png = client.image(state)
    assert png.status == 200 and png.headers["content-type"] == "image/png"
    assert png.body.startswith(b"\x89PNG")
    page = client.request("GET", f"/p/{client.token}")
    assert page.status == 200 and b"not a digit" in page.body


def test_label_outside_the_allowed_set_is_refused(served, unchanged):
    client, state = started(served, 1)
    nonce = state["trial"]["nonce"]
    for label in (10, -2, 99, "3", 3.0, True, None):
        reply = client.answer(nonce, label)  # type: ignore[arg-type]
        assert reply.status == 422, (label, reply)
        assert "'label' must be an integer 0-9" in reply.json()["error"]
    assert client.answer(nonce, 3, rt_ms=-5).status == 422


def test_image_not_assigned_is_refused(served, unchanged):
    study = served[0]
    client, state = started(served, 1)
    other, other_state = started(served, 2)
    conn = store.connect(study.path)
    later = conn.execute(
        "SELECT nonce FROM assignments WHERE participant_id = 2 ORDER BY position DESC "
        "LIMIT 1").fetchone()[0]
    conn.close()
    reply = client.answer(other_state["trial"]["nonce"], 3)   # another participant's
    assert reply.status == 404 and "not assigned to you" in reply.json()["error"]
    assert client.answer("Z" * 32, 3).status == 404             # nobody's
    reply = client.answer(later, 3)                              # own, but not yet due
    assert reply.status == 409 and "not your current image" in reply.json()["error"]
    # images: only the current one, only to its participant
    assert client.request("GET", f"/api/p/{client.token}/image/{later}").status == 404
    stolen = f"/api/p/{client.token}/image/{other_state['trial']['nonce']}"
    assert client.request("GET", stolen).status == 404
    assert client.request("GET", other_state["trial"]["image"]).status == 409  # no session


def test_replayed_and_duplicate_answers_are_recorded_once(served):
    study = served[0]
    client, state = started(served, 3)
    nonce = state["trial"]["nonce"]
    assert client.answer(nonce, 4).status == 200
    before = snapshot(study.path)
    replay = client.answer(nonce, 4)
    assert replay.status == 409 and replay.json()["retry_state"] is True
    assert client.answer(nonce, 5).status == 409
    assert snapshot(study.path) == before
    # two copies of the next answer sent at once: exactly one is recorded
    nonce = client.state().json()["trial"]["nonce"]
    twins = [StudyClient(served[1].url, client.token) for _ in range(2)]
    for t in twins:
        t.cookies = dict(client.cookies)
    barrier, statuses = threading.Barrier(2), []

    def send(c: StudyClient) -> None:
        barrier.wait()
        statuses.append(c.answer(nonce, 6).status)

    threads = [threading.Thread(target=send, args=(c,)) for c in twins]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 409]
    conn = store.connect(study.path)
    n = conn.execute("SELECT COUNT(*) FROM responses r JOIN assignments a ON "
                     "a.id = r.assignment_id WHERE a.nonce = ?", (nonce,)).fetchone()[0]
    conn.close()
    assert n == 1


def test_oversized_and_malformed_requests_are_refused(served, unchanged):
    client, state = started(served, 1)
    path = client.api("answer")
    nonce = state["trial"]["nonce"]
    cases = [
        (b'{"nonce": "%s", "label": 1, "pad": "%s"}' % (nonce.encode(), b"x" * 2000),
         {"Content-Type": "application/json"}, 413),
        (b'{"label": 1}', {"Content-Type": "text/plain"}, 415),
        (b'{"nonce": "%s", "label": 1' % nonce.encode(), {"Content-Type": "application/json"},
         400),
        (b"\xff\xfe", {"Content-Type": "application/json"}, 400),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400),
        (b'{"nonce": "%s", "label": 1, "target": 3}' % nonce.encode(),
         {"Content-Type": "application/json"}, 400),
        (b'{"nonce": "../../etc", "label": 1}', {"Content-Type": "application/json"}, 400),
        (b'{"label": 1}', {"Content-Type": "application/json"}, 400),
    ]
    for body, headers, status in cases:
        reply = client.request("POST", path, body, headers)
        assert reply.status == status, (body[:40], reply)
    # a body over the limit sent in chunks, without Content-Length
    chunk = b"x" * 4000
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    big = _raw(served[1], (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
                           "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                           "Connection: close\r\n\r\n").encode()
               + b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk))
    assert big.startswith(b"HTTP/1.1 413"), big[:80]
    # an announced length over the limit is refused before the body is read
    claimed = client.request("POST", path, b"{}", {"Content-Type": "application/json",
                                                   "Content-Length": "100000"})
    assert claimed.status in (400, 413)


def _raw(server: ServerProcess, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_malformed_http_is_refused(served, unchanged):
    server = served[1]
    assert _raw(server, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    huge = (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"a" * 100_000
            + b"\r\n\r\n")
    reply = _raw(server, huge)
    assert reply.split(b" ", 2)[1] in (b"400", b"431"), reply[:80]


def test_reused_invite_in_another_browser_is_refused(served, unchanged):
    study, server = served[0], served[1]
    first, state = started(served, 0)
    second = StudyClient(server.url, study.tokens[0])
    for reply in (second.start(), second.state(), second.answer(state["trial"]["nonce"], 1),
                  second.request("GET", state["trial"]["image"])):
        assert reply.status == 409 and "another browser" in reply.json()["error"]
    second.cookies = {"study_session": "forged" * 4}
    assert second.state().status == 409
    assert first.state().status == 200


def test_answer_before_start_is_refused(tmp_path):
    study = make_study(tmp_path / "s.study", n=4, participants=2, k=1, rate=0.0)
    before = snapshot(study.path)
    with ServerProcess(study.path) as server:
        client = StudyClient(server.url, study.tokens[0])
        state = client.state()
        assert state.status == 200 and state.json()["status"] == "not_started"
        reply = client.answer("N" * 32, 1)
        assert reply.status == 403 and "press Start" in reply.json()["error"]
    assert snapshot(study.path) == before


def test_admin_page_and_exports_need_the_admin_token(served, unchanged):
    study, server = served[0], served[1]
    client = StudyClient(server.url, study.admin_token)
    for token in ("W" * 32, study.tokens[0], "bad"):
        assert client.request("GET", f"/admin/{token}").status == 403
        for kind in ("results.json", "responses.csv", "counts.csv"):
            reply = client.request("GET", f"/admin/{token}/{kind}")
            assert reply.status == 403, (token, kind)
    page = client.request("GET", f"/admin/{study.admin_token}")
    assert page.status == 200 and b"Participants" in page.body and b"Images" in page.body
    csv = client.request("GET", f"/admin/{study.admin_token}/responses.csv")
    assert csv.status == 200 and csv.body.startswith(b"participant,")
    res = client.request("GET", f"/admin/{study.admin_token}/results.json")
    assert res.status == 200 and "exclusion_rule" in res.json()
    assert client.request("GET", f"/admin/{study.admin_token}/study.sqlite").status == 404


@pytest.mark.parametrize("path", [
    "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd",
    "/p/..%2F..%2Fetc%2Fpasswd", "/api/p/TOKEN/image/..%2F..%2Fs.study",
    "/api/p/TOKEN/image/%2e%2e", "/s.study", "/../s.study", "/admin/ADMIN/..%2Fs.study",
    "/static/study.js/../../s.study",
])
def test_no_request_reads_files_outside_the_study(served, unchanged, path):
    study = served[0]
    client, _ = started(served, 0)
    path = path.replace("TOKEN", study.tokens[0]).replace("ADMIN", study.admin_token)
    reply = client.request("GET", path)
    assert reply.status in (400, 403, 404), (path, reply)
    assert b"root:" not in reply.body and b"SQLite" not in reply.body


def test_finished_participant_cannot_answer_again(tmp_path):
    study = make_study(tmp_path / "s.study", n=4, participants=2, k=1, rate=0.0)
    with ServerProcess(study.path) as server:
        client = StudyClient(server.url, study.tokens[0])
        assert client.label_all(lambda s, png: 2) == 2
        state = client.state().json()
        assert state == {"status": "finished", "answered": 2, "total": 2, "trial": None}
        before = snapshot(study.path)
        conn = store.connect(study.path)
        nonce = conn.execute("SELECT nonce FROM assignments WHERE participant_id = 1 "
                             "LIMIT 1").fetchone()[0]
        conn.close()
        assert client.answer(nonce, 3).status == 409
        assert client.start().json()["status"] == "finished"
        assert snapshot(study.path) == before
        # a reissued token: the old link stops working, the answers stay
        conn = store.connect(study.path)
        fresh = store.reissue_tokens(conn, [1])[1]
        conn.close()
        assert client.state().status == 404
        again = StudyClient(server.url, fresh)
        assert again.start().json() == state


def test_kill_and_restart_loses_nothing(tmp_path):
    study = make_study(tmp_path / "s.study", n=12, participants=3, k=2, rate=0.2)
    server = ServerProcess(study.path).start()
    try:
        clients = [StudyClient(server.url, t) for t in study.tokens]
        done = [c.label_all(lambda s, png: 7, limit=n) for c, n in zip(clients, (3, 5, 0),
                                                                         strict=True)]
        assert done == [3, 5, 0]
        current = [c.state().json() for c in clients]
        recorded = snapshot(study.path)[0]
        assert len(recorded) == 8
        port = server.port
        server.kill()  # SIGKILL: no shutdown, no cleanup
        assert server.proc.returncode == -9
        server = ServerProcess(study.path, port=port).start()
        assert server.port == port
        for c in clients:
            c.close()  # the old connections died with the server
        # nothing lost, and every participant resumes at the same image
        assert snapshot(study.path)[0] == recorded
        for c, before in zip(clients, current, strict=True):
            assert c.state().json() == before
        assert [c.label_all(lambda s, png: 1) for c in clients] == [
            len(seq) - d for seq, d in zip(study.plan.sequences, done, strict=True)]
        total = sum(len(s) for s in study.plan.sequences)
        responses = snapshot(study.path)[0]
        assert len(responses) == total
        assert [r[1] for r in responses].count(7) == 8
    finally:
        server.stop()


def _label_for(nonce: str) -> int:
    return sum(map(ord, nonce)) % 11 - 1  # deterministic, covers 0..9 and REJECT


def test_twenty_participants_at_once(tmp_path):
    """20 scripted participants over loopback, at once: every answer recorded once."""
    study = make_study(tmp_path / "s.study", n=60, participants=20, k=3, rate=0.1)
    errors: list[BaseException] = []
    with ServerProcess(study.path) as server:
        clients = [StudyClient(server.url, t) for t in study.tokens]
        barrier = threading.Barrier(len(clients))

        def run(c: StudyClient) -> None:
            try:
                barrier.wait()
                c.label_all(lambda s, png: _label_for(s["trial"]["nonce"]))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(c,)) for c in clients]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        took = time.perf_counter() - start
        assert not errors, errors[:3]
        assert not any(t.is_alive() for t in threads)
    conn = store.connect(study.path)
    rows = conn.execute("SELECT a.nonce, r.label FROM assignments a LEFT JOIN responses r "
                        "ON r.assignment_id = a.id").fetchall()
    finished = conn.execute("SELECT COUNT(*) FROM participants WHERE finished_at IS NOT "
                            "NULL").fetchone()[0]
    kinds = {item_of_nonce(conn, n)[1] for n, _ in rows}
    conn.close()
    assert len(rows) == sum(len(s) for s in study.plan.sequences) == 60 * 3 + 20
    assert all(label == _label_for(nonce) for nonce, label in rows)  # none missing or wrong
    assert finished == 20 and kinds == {"example", "check"}
    requests = sum(c.requests for c in clients)
    print(f"20 participants, {requests} requests in {took:.2f} s "
          f"({requests / took:.0f} requests/s)")
