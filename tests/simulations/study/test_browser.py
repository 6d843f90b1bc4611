"""End to end in a real headless Chromium (Debian's ``chromium``, driven by Playwright):
a study of a published set, two participants labelling every image with the keyboard
(the second fails an attention check and is excluded), the admin page, the report and
the exported labels read back by the published-set loader.

``.ci/run`` installs Chromium (apt) and the Playwright driver (pip); when Chromium is
missing or cannot start, this test fails with the reason (it never skips for that).
Set ``STUDY_SCREENSHOT=path.png`` to keep the screenshot of the labelling page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("statsmodels")
try:
    from playwright import sync_api
except ImportError as exc:  # .ci/run installs it and sets STUDY_BROWSER_REQUIRED
    if os.environ.get("STUDY_BROWSER_REQUIRED"):
        raise ImportError(f"the Playwright driver is required here: {exc}") from exc
    pytest.skip("the Playwright driver is not installed (pip install playwright; .ci/run "
                "installs it)", allow_module_level=True)

from invariance_tradeoffs.simulations.cli import main  # noqa: E402
from invariance_tradeoffs.simulations.data.published import load_published_examples  # noqa: E402
from invariance_tradeoffs.simulations.study import store  # noqa: E402
from invariance_tradeoffs.simulations.study.client import ServerProcess  # noqa: E402
from invariance_tradeoffs.theory.oracles import REJECT  # noqa: E402
from tests.study_helpers import item_of_nonce, read_links  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
N_EXAMPLES = 6


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y "
                    "chromium); .ci/run does")
    pw = sync_api.sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as exc:  # noqa: BLE001 - any launch failure fails the test
        pw.stop()
        pytest.fail(f"headless Chromium could not start: {exc}")
    yield chromium
    chromium.close()
    pw.stop()


def _key(label: int) -> str:
    return "x" if label == REJECT else str(label)


def label_every_image(page, study: Path, choose, *, screenshot: Path | None = None,
                      reload_after: int | None = None) -> list[tuple[str, int]]:
    """Answer every image with the keyboard; ``choose(kind, source, published, k)`` gives
    the label of the ``k``-th answer. Returns (kind, label) per answer."""
    conn = store.connect(study)
    answers: list[tuple[str, int]] = []
    try:
        while True:
            # selectors, not wait_for_function: the page's CSP forbids eval
            page.wait_for_selector('#done:not([hidden]), #trial[data-ready="1"]')
            if page.is_visible("#done"):
                return answers
            src = page.get_attribute("#digit", "src")
            assert page.inner_text("#pos") == str(len(answers) + 1)
            kind, source, published = item_of_nonce(conn, src.rsplit("/", 1)[1])[1:]
            if screenshot is not None and len(answers) == 2:
                page.screenshot(path=str(screenshot))
            label = choose(kind, source, published, len(answers))
            page.keyboard.press(_key(label))
            answers.append((kind, label))
            page.wait_for_selector(
                f'#done:not([hidden]), #trial[data-ready="1"] #digit:not([src="{src}"])')
            if reload_after is not None and len(answers) == reload_after:
                page.reload()  # resumes where it was: same browser, same session cookie
    finally:
        conn.close()


def test_published_set_study_in_chromium(browser, tmp_path, published_dir, mnist_dir):
    study, out = tmp_path / "study.sqlite", tmp_path / "results"
    assert main(["study", "create", "--published", "linf/automated_eps03",
                 "--published-dir", str(published_dir), "--data-dir", str(mnist_dir.parent),
                 "--participants", "2", "--labels-per-image", "2", "--attention-rate", "0.2",
                 "--items", f"0:{N_EXAMPLES}", "--seed", "3", "--out", str(study)]) == 0
    tokens, admin = read_links(tmp_path / "study.sqlite.links.csv")
    shot = tmp_path / "labelling.png"
    with ServerProcess(study) as server:
        # participant 1: the published human label on every example, checks right
        page = browser.new_context(viewport={"width": 820, "height": 640}).new_page()
        page.goto(f"{server.url}p/{tokens[0]}")
        page.wait_for_selector("#intro:not([hidden])")
        total = int(page.inner_text("#n-total"))
        assert total == N_EXAMPLES + 2  # 6 examples + round(0.2 * 6 / 0.8) checks
        page.focus("#start")
        page.keyboard.press("Enter")
        first = label_every_image(
            page, study, lambda kind, src, pub, k: src if kind == "check" else pub,
            screenshot=shot)
        assert len(first) == total and page.is_visible("#done")
        text = page.inner_text("body").lower()
        assert "target" not in text and "source" not in text

        # participant 2: wrong on the first attention check, "can't tell" on examples,
        # reloading the page half-way
        page2 = browser.new_context().new_page()
        page2.goto(f"{server.url}p/{tokens[1]}")
        page2.click("#start")
        checks_seen = []

        def careless(kind, src, pub, k):
            if kind == "check":
                checks_seen.append(k)
                return (src + 1) % 10 if len(checks_seen) == 1 else src
            return REJECT

        second = label_every_image(page2, study, careless, reload_after=3)
        assert len(second) == total and len(checks_seen) == 2

        # another browser opening participant 1's link is refused
        page3 = browser.new_context().new_page()
        page3.goto(f"{server.url}p/{tokens[0]}")
        page3.wait_for_selector("#error:not([hidden])")
        assert "another browser" in page3.inner_text("#error-text")

        admin_page = browser.new_context().new_page()
        admin_page.goto(f"{server.url}admin/{admin}")
        body = admin_page.inner_text("body")
        assert "2 of 2 participants started, 2 finished" in body
        assert "1 of 2 attention checks correct" in body

    assert main(["study", "results", str(study), "--out", str(out)]) == 0
    report = (out / "REPORT.md").read_text()
    assert f"| 1 | invite | {total} / {total} | 2 / 2 | yes |" in report
    assert (f"| 2 | invite | {total} / {total} | 1 / 2 | no: 1 of 2 attention checks "
            "correct") in report
    pset = load_published_examples(published_dir, data_dir=mnist_dir.parent)[
        "linf/automated_eps03"]
    exported = load_published_examples(out / "release", data_dir=mnist_dir.parent)[
        "linf/study_automated_eps03"]
    # only participant 1 is kept: the majority labels are the published human labels
    np.testing.assert_array_equal(exported.human_labels, pset.human_labels[:N_EXAMPLES])
    np.testing.assert_array_equal(exported.source_indices, pset.source_indices[:N_EXAMPLES])
    assert np.abs(exported.examples - pset.examples[:N_EXAMPLES]).max() <= 0.5 / 255 + 1e-9
    changed = int((pset.human_labels[:N_EXAMPLES] != pset.original_labels[:N_EXAMPLES]).sum())
    assert f"({changed}/{N_EXAMPLES})" in report  # label-change rate with its counts

    assert shot.is_file() and shot.stat().st_size < 200_000
    if os.environ.get("STUDY_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["STUDY_SCREENSHOT"])
