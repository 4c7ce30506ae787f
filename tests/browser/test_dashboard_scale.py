"""The study page with 10,000 trials: it loads, bounds the table, and then polls incrementally."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from bench.api import fill
from tests.api.conftest import bearer
from tests.browser.conftest import Server, sign_in

TRIALS = 10_000
ROWS = 100  # the table's page
LOAD_MS = 120_000  # a loaded machine; no timing is asserted


@pytest.fixture(scope="module")
def big_study(server: Server) -> tuple[int, str]:
    """bench/api.py's study of 10,000 finished trials, left running; and a viewer's token."""
    study_id, tokens = fill(server.database_url, TRIALS, 1)
    return study_id, tokens[0]


def test_a_study_of_10000_trials_loads_once_then_polls_after_its_cursor(
    server: Server, big_study: tuple[int, str], page: Page
) -> None:
    study_id, token = big_study
    sign_in(page, server, token)
    page.goto(f"{server.base}/#/studies/{study_id}")
    expect(page.locator(".progress-text")).to_have_text(
        f"{TRIALS} / {TRIALS} trials", timeout=LOAD_MS
    )
    expect(page.locator(".trials-table .rows")).to_have_text(
        f"1–{ROWS} of {TRIALS}", timeout=LOAD_MS
    )
    expect(page.locator("tr.trial")).to_have_count(ROWS)
    assert page.evaluate("document.querySelector('#best-chart').data[0].x.length") > 0

    # The load is over (the table is drawn after every trial arrived): from now on each tick
    # asks only for trials after the cursor, and for the study with the ETag it holds.
    requests: list[tuple[str, str | None]] = []
    page.on("request", lambda r: requests.append((r.url, r.headers.get("if-none-match"))))
    with page.expect_request(re.compile(r"/trials\?after=")) as tick:
        pass
    after = int(re.search(r"after=(\d+)", tick.value.url).group(1))
    # The cursor: the last trial's number, with nothing after it.
    newer = httpx.get(
        f"{server.base}/api/v1/studies/{study_id}/trials?after={after}", headers=bearer(token)
    )
    assert after == TRIALS - 1 and newer.json()["data"] == [], newer.text
    with page.expect_request(re.compile(r"/trials\?after=")):
        pass  # a second tick
    trial_pages = [url for url, _ in requests if "/trials?" in url]
    assert trial_pages and all(f"after={after}" in url for url in trial_pages), trial_pages
    study_polls = [etag for url, etag in requests if url.endswith(f"/studies/{study_id}")]
    assert study_polls and all(study_polls), requests
    expect(page.locator("tr.trial")).to_have_count(ROWS)

    page.click("button[name=next]")
    expect(page.locator(".trials-table .rows")).to_have_text(f"{ROWS + 1}–{2 * ROWS} of {TRIALS}")
    expect(page.locator("tr.trial").first).to_have_attribute("data-number", str(ROWS))
