"""The pages of the web application: participant page (HTML shell + script), admin page.

Everything is a constant or rendered from the study with :func:`html.escape`; no page
reads a file. The participant page is one HTML shell whose script asks the JSON API
(:mod:`simulations.study.app`) for the current state; it never learns more than the
current image (a PNG) and the progress.
"""

from __future__ import annotations

from html import escape

from invariance_tradeoffs.simulations.study.exports import REJECT_CHOICE

__all__ = ["CSS", "INDEX_HTML", "PARTICIPANT_HTML", "SCRIPT", "admin_html", "message_html"]

CSS = """
:root { font-family: system-ui, sans-serif; color: #1d1d1f; background: #f5f5f7; }
main { max-width: 44rem; margin: 2rem auto; padding: 1.5rem 2rem; background: #fff;
       border-radius: 12px; box-shadow: 0 1px 4px rgba(0,0,0,.08); }
h1 { font-size: 1.5rem; margin-top: 0; }
button { font: inherit; cursor: pointer; border: 1px solid #b0b0b8; border-radius: 8px;
         background: #fff; padding: .5rem .9rem; }
button:hover { background: #eef; }
button.primary { background: #2451c6; color: #fff; border-color: #2451c6; }
kbd { border: 1px solid #b0b0b8; border-radius: 4px; padding: 0 .3rem; background: #f0f0f3; }
#trial { text-align: center; }
#progress { display: flex; align-items: center; gap: 1rem; justify-content: center; }
#bar { width: 16rem; }
#digit { width: 280px; height: 280px; image-rendering: pixelated; margin: 1rem auto;
         display: block; border-radius: 4px; background: #000; }
#keys { display: grid; grid-template-columns: repeat(10, 1fr); gap: .4rem; margin: .5rem 0; }
#keys button { font-size: 1.3rem; padding: .5rem 0; }
#reject { margin-top: .4rem; }
#status { min-height: 1.4em; color: #666; }
.hint { color: #666; font-size: .9rem; }
table { border-collapse: collapse; font-size: .9rem; }
td, th { border-bottom: 1px solid #ddd; padding: .2rem .6rem; text-align: right; }
main.wide { max-width: 80rem; }
"""

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Labelling study</title>
<link rel="stylesheet" href="/static/study.css"></head>
<body><main><h1>Labelling study</h1>
<p>This server runs a labelling study. Please open the personal invite link you were
given.</p></main></body></html>
"""

PARTICIPANT_HTML = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Which digit is this?</title>
<link rel="stylesheet" href="/static/study.css">
<script src="/static/study.js" defer></script></head>
<body><main>
<section id="intro" hidden>
<h1>Which digit is this?</h1>
<p>You will see <strong id="n-total"></strong> images of handwritten digits, one at a
time. For each image, press the key of the digit you see (<kbd>0</kbd> to <kbd>9</kbd>)
or click its button. If the image is not a digit, or you cannot tell which digit it is,
press <kbd>X</kbd> or click <em>{REJECT_CHOICE}</em>.</p>
<p>Some images are deliberately unusual: answer with the digit <em>you</em> see; there
is no time limit. A few images check that you are paying attention. Each answer is saved
at once and cannot be changed; you can close this page and come back later with the
same link in the same browser.</p>
<button id="start" class="primary" autofocus>Start</button>
</section>
<section id="trial" hidden>
<div id="progress"><span>Image <strong id="pos"></strong> of <strong id="total"></strong>
</span><progress id="bar" value="0" max="1"></progress></div>
<img id="digit" alt="the image to label" width="280" height="280">
<div id="keys"></div>
<button id="reject">{REJECT_CHOICE.capitalize()} (<kbd>X</kbd>)</button>
<p class="hint">Keys <kbd>0</kbd>&ndash;<kbd>9</kbd>: the digit you see &middot; <kbd>X</kbd>:
{REJECT_CHOICE}</p>
<p id="status" role="status" aria-live="polite"></p>
</section>
<section id="done" hidden><h1>Thank you!</h1>
<p>All your answers are saved. You can close this page.</p></section>
<section id="error" hidden><h1>Something went wrong</h1><p id="error-text"></p></section>
<noscript>This page needs JavaScript.</noscript>
</main></body></html>
"""

SCRIPT = r"""
"use strict";
(() => {
  const match = location.pathname.match(/^\/p\/([A-Za-z0-9_-]+)$/);
  const token = match ? match[1] : "";
  const $ = (id) => document.getElementById(id);
  let trial = null;
  let busy = true;
  let shownAt = 0;

  function show(id) {
    for (const s of ["intro", "trial", "done", "error"]) $(s).hidden = s !== id;
  }
  function fail(message) {
    busy = true;
    $("error-text").textContent = message;
    show("error");
  }
  async function call(method, path, body) {
    const options = {method, headers: {}, credentials: "same-origin", cache: "no-store"};
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(`/api/p/${token}/${path}`, options);
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    return {status: response.status, data};
  }
  function render(state) {
    $("n-total").textContent = state.total;
    if (state.status === "not_started") { show("intro"); busy = false; return; }
    if (state.status === "finished") { show("done"); busy = true; return; }
    trial = state.trial;
    $("pos").textContent = state.answered + 1;
    $("total").textContent = state.total;
    $("bar").max = state.total;
    $("bar").value = state.answered;
    show("trial");
    busy = true;
    $("trial").dataset.ready = "0";
    $("status").textContent = "Loading\u2026";
    const img = $("digit");
    img.onload = () => {
      busy = false;
      shownAt = performance.now();
      $("status").textContent = "";
      $("trial").dataset.ready = "1";
    };
    img.onerror = () => { setTimeout(load, 1000); };
    img.src = trial.image;
  }
  async function load() {
    try {
      const {status, data} = await call("GET", "state");
      if (status === 200) render(data); else fail(data.error || `Error ${status}.`);
    } catch (e) {
      fail("The server cannot be reached. Your answers so far are saved; reload this page later.");
    }
  }
  async function start() {
    if (busy) return;
    busy = true;
    const {status, data} = await call("POST", "start", {});
    if (status === 200) render(data); else fail(data.error || `Error ${status}.`);
  }
  async function answer(label) {
    if (busy || !trial) return;
    busy = true;
    $("trial").dataset.ready = "0";
    $("status").textContent = "Saving\u2026";
    const body = {nonce: trial.nonce, label, rt_ms: Math.round(performance.now() - shownAt)};
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        const {status, data} = await call("POST", "answer", body);
        if (status === 200) { render(data); return; }
        if (status === 409 && data.retry_state) { await load(); return; }
        fail(data.error || `Error ${status}.`);
        return;
      } catch (e) {
        $("status").textContent = "Connection problem, retrying\u2026";
        await new Promise((resolve) => setTimeout(resolve, 1000 * attempt));
      }
    }
    fail("The server cannot be reached. Your answers so far are saved; reload this page later.");
  }
  for (let d = 0; d <= 9; d++) {
    const b = document.createElement("button");
    b.textContent = String(d);
    b.dataset.label = String(d);
    b.addEventListener("click", () => answer(d));
    $("keys").appendChild(b);
  }
  $("reject").addEventListener("click", () => answer(-1));
  $("start").addEventListener("click", start);
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat || $("trial").hidden) return;
    if (/^[0-9]$/.test(ev.key)) { ev.preventDefault(); answer(Number(ev.key)); }
    else if (ev.key === "x" || ev.key === "X") { ev.preventDefault(); answer(-1); }
  });
  load();
})();
"""


def message_html(title: str, message: str) -> str:
    """A small page with a title and one message (errors, unknown links)."""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><link rel=\"stylesheet\" href=\"/static/study.css\">"
            f"</head><body><main><h1>{escape(title)}</h1><p>{escape(message)}</p></main>"
            "</body></html>\n")


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def admin_html(title: str, token: str, summary: str, participants: list[dict],
               items: list[dict]) -> str:
    """The admin page: progress per participant and per image, and the export links.

    ``participants``: dicts of :meth:`simulations.study.results.StudyResults.participants`;
    ``items``: dicts with ``id, kind, position, source_index, planned, received``.
    """
    base = f"/admin/{escape(token)}"
    p_rows = [[p["participant"], p["origin"], "finished" if p["finished"] else
               ("in progress" if p["answered"] else "not started"),
               f"{p['answered']} / {p['assigned']}",
               f"{p['checks_correct']} / {p['checks_answered']}",
               "yes" if p["kept"] else f"no ({p['excluded_because']})"] for p in participants]
    i_rows = [[i["id"], i["kind"], "" if i["position"] is None else i["position"],
               i["source_index"], f"{i['received']} / {i['planned']}"] for i in items]
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"refresh\" content=\"15\">"
        f"<title>Admin: {escape(title)}</title>"
        "<link rel=\"stylesheet\" href=\"/static/study.css\"></head><body><main class=\"wide\">"
        f"<h1>Admin: {escape(title)}</h1><p>{escape(summary)}</p>"
        f"<p>Exports: <a href=\"{base}/results.json\">results (JSON)</a> &middot; "
        f"<a href=\"{base}/responses.csv\">raw responses (CSV)</a> &middot; "
        f"<a href=\"{base}/counts.csv\">counts matrix (CSV)</a></p>"
        "<h2>Participants</h2>"
        + _table(["participant", "origin", "status", "answered / assigned",
                  "checks correct / answered", "kept"], p_rows)
        + "<h2>Images</h2>"
        + _table(["item", "kind", "position in set", "MNIST test index",
                  "answers / planned"], i_rows)
        + "</main></body></html>\n")
