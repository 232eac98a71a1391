"""`medix-r1 app` in a real headless Chromium (Debian's `chromium`, driven by Playwright; nothing downloads a
browser): each tab as a person uses it, against a real app process on 127.0.0.1.

- Ask: a bundled CT image and a question, answered by the embedded policy (16 new tokens), the reply's
  modality tag / reasoning / answer / well-formed flag shown as the shared parser reads the reply;
- Runs: a training run's curves and sampled completions; an eval run's samples filtered by state, one
  sample's detail with its image and verdict; a broken metrics.jsonl shows a message, not a traceback;
- Review: two reviewers vote on a seeded review; the page's win-rate table matches the votes cast.

Screenshots go to $MEDIX_TEST_ARTIFACTS (default: the test's tmp folder), one or more per tab.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from medix_r1.data import BUNDLED_DIR
from medix_r1.prompts import parse_completion
from medix_r1.review import Review, wilson_interval

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    out = Path(os.environ.get("MEDIX_TEST_ARTIFACTS") or tmp_path_factory.mktemp("screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def runs(app_runs):
    return app_runs


@pytest.fixture(scope="module")
def page(app_server):
    from playwright.sync_api import sync_playwright

    app = app_server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        pg = browser.new_page(viewport={"width": 1400, "height": 1100})
        pg.set_default_timeout(30_000)
        pg.goto(app.url)
        pg.wait_for_selector("#ask-button")
        yield pg
        browser.close()


def choose(pg, elem_id: str, value: str) -> None:
    """Pick ``value`` in a Gradio dropdown."""
    pg.locator(f"#{elem_id} input[role=combobox]").click()
    pg.get_by_role("option", name=value, exact=True).click()


def text_of(pg, elem_id: str) -> str:
    return pg.locator(f"#{elem_id} textarea, #{elem_id} input").first.input_value()


def test_ask_tab_embedded_policy(page, artifacts):
    image = BUNDLED_DIR / "images" / "ct-chest.png"
    page.locator("#ask-upload input[type=file]").set_input_files(str(image))
    page.wait_for_function("document.querySelector('#ask-image-note').innerText.includes('Read as')")
    page.locator("#ask-question textarea").fill("What imaging modality is shown here?")
    page.locator("#ask-button").click()
    page.wait_for_function("document.querySelector('#ask-status').innerText.includes('Done.')", timeout=120_000)
    reply = text_of(page, "ask-reply")
    assert reply.strip()
    parsed = parse_completion(reply)
    assert text_of(page, "ask-tag") == (parsed.modality or "(none)")
    assert text_of(page, "ask-reasoning") == (parsed.reasoning or "(none)")
    assert text_of(page, "ask-answer") == parsed.final_answer
    assert text_of(page, "ask-well-formed") == ("yes" if parsed.well_formed else f"no: {parsed.reason}")
    assert "Error" not in page.locator("#ask-status").inner_text()
    page.screenshot(path=str(artifacts / "app-ask.png"), full_page=True)


def test_runs_tab_training_curves_and_eval_samples(page, runs, artifacts):
    from medix_r1.app.runs import eval_samples

    samples, _ = eval_samples(runs / "demo" / "eval-trained")
    correct = [s for s in samples if s["state"] == "correct"]
    page.get_by_role("tab", name="Runs").click()
    choose(page, "runs-run", "demo/train")
    page.wait_for_function("document.querySelector('#runs-message').innerText.includes('8 logged steps')")
    page.wait_for_selector("#runs-curves img, #runs-curves svg")
    assert "Computed tomography" in page.locator("#runs-train-samples").inner_text()
    page.screenshot(path=str(artifacts / "app-runs-train.png"), full_page=True)
    # A run being written: a new metrics row shows up by itself (the page refreshes every 5 s).
    with (runs / "demo" / "train" / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 9, "reward": 1.9, "kl": 0.02}\n')
    page.wait_for_function("document.querySelector('#runs-message').innerText.includes('9 logged steps')")

    choose(page, "runs-run", "broken-train")
    page.wait_for_function("document.querySelector('#runs-message').innerText.includes('line 2: not JSON')")
    assert "Traceback" not in page.content()

    choose(page, "runs-run", "demo/eval-trained")
    page.wait_for_function("document.querySelector('#runs-message').innerText.includes('62 samples')")
    choose(page, "filter-state", "correct")
    page.wait_for_function(f"document.querySelector('#runs-page-note').innerText.startsWith('{len(correct)} of 62')")
    table = page.locator("#runs-samples")
    page.wait_for_function(f"document.querySelector('#runs-samples').innerText.includes('{correct[-1]['id']}')")
    text = table.inner_text()
    assert all(s["id"] in text for s in correct) and text.count("wrong") == 0
    page.wait_for_function("document.querySelector('#runs-sample-detail').innerText.includes('correct')")
    detail = page.locator("#runs-sample-detail").inner_text()
    assert "Verdict:" in detail and "Reference:" in detail
    page.screenshot(path=str(artifacts / "app-runs-eval.png"), full_page=True)


def _cast(page, review: Review, reviewer: str, outcomes: list[str]) -> None:
    """Vote as ``reviewer`` on their next pairs; outcome 'x'/'y' means that run wins, else tie/both_wrong."""
    page.locator("#review-reviewer textarea, #review-reviewer input").first.fill(reviewer)
    page.locator("#review-start").click()
    for i, o in enumerate(outcomes):
        page.wait_for_function(f"document.querySelector('#review-progress').innerText.includes('Pair {i + 1} of')")
        pair = review.next_pair(reviewer)
        assert text_of(page, "review-answer-a") == pair.answer_a
        if o in ("tie", "both_wrong"):
            button = o
        else:
            button = "A" if pair.run_a == (review.x if o == "x" else review.y) else "B"
        page.locator(f"#vote-{button}").click()
        page.wait_for_function(f"document.querySelector('#review-progress').innerText.includes('Pair {i + 2} of')")


def test_review_tab_two_reviewers_and_win_rates(page, runs, artifacts):
    page.get_by_role("tab", name="Review").click()
    choose(page, "review-pick", "reviews/clinic")
    review = Review(runs / "reviews" / "clinic")
    ann, bob = ["x", "x", "y", "tie"], ["x", "both_wrong", "y"]
    _cast(page, review, "ann", ann)
    _cast(page, review, "bob", bob)
    page.screenshot(path=str(artifacts / "app-review-vote.png"), full_page=True)
    page.locator("#review-results-button").click()
    page.wait_for_function("document.querySelector('#review-results-note').innerText.includes('7 votes')")
    cells_js = ("Array.from(document.querySelectorAll('#review-results [role=row]'))"
                ".map(tr => Array.from(tr.querySelectorAll('[role=gridcell]')).map(td => td.innerText.trim()))")
    page.wait_for_function(f"{cells_js}.some(row => row[0] === 'overall')")
    table = page.evaluate(cells_js)
    cells = next((row for row in table if row and row[0] == "overall"), table)
    # x wins 3, y wins 2, 1 tie, 1 both wrong: win rate (3 + 0.5) / 6
    lo, hi = wilson_interval(3.5, 6)
    assert cells == ["overall", "3", "2", "1", "1", "6", "58.3", f"{100 * lo:.1f}-{100 * hi:.1f}"]
    res = review.results()
    assert res["rows"][-1]["win_rate"] == pytest.approx(3.5 / 6) and res["reviewers"] == ["ann", "bob"]
    page.screenshot(path=str(artifacts / "app-review.png"), full_page=True)
