"""The trainers page and a failed trial's traceback, in a real browser against `hpsearch serve`
with the test trainer plugins installed beside it."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.api.conftest import token_maker
from tests.api.test_trainer_studies import offer_from_a_gone_worker
from tests.browser import support
from tests.browser.conftest import Server, sign_in
from tests.trainers.conftest import install_test_trainers
from tests.trainers.test_runner import plugin_study

WAIT_S = 120


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`hpsearch serve` whose local pool offers the test trainers, and a trainer that a worker
    gone a day ago offered."""
    folder = tmp_path_factory.mktemp("trainers")
    site = install_test_trainers(folder / "site")
    url = f"sqlite:///{folder / 'hpsearch.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
        )
        process, base, token = support.serve(folder, url)
    try:
        offer_from_a_gone_worker(url)
        yield Server(base, token, token_maker(url), url)
    finally:
        process.stop()


def ended(server: Server, study_id: int) -> None:
    """Wait until the study has ended."""
    deadline = time.monotonic() + WAIT_S
    while server.get(f"/studies/{study_id}")["finished_at"] is None:
        assert time.monotonic() < deadline, f"study {study_id} did not end"
        time.sleep(0.3)


def test_the_trainers_page_lists_each_trainer_its_workers_metrics_and_settings(
    server: Server, page: Page
) -> None:
    sign_in(page, server)
    page.click("nav a[href='#/trainers']")
    card = page.locator(".trainer[data-trainer=quadratic]")
    expect(card.locator("h2")).to_have_text("quadratic version 1")
    expect(card.locator(".live")).to_have_text(f"1 live worker on {socket.gethostname()}")
    expect(card.locator(".step-metrics")).to_have_text("loss")
    expect(card.locator(".final-metrics")).to_have_text("loss score")
    x = card.locator("tr[data-setting=x]")
    expect(x.locator(".type")).to_have_text("number")
    expect(x.locator(".default")).to_have_text("0.5")
    expect(x.locator(".bounds")).to_have_text(">= 0, <= 1")
    expect(card.locator("tr[data-setting]")).to_have_count(2)
    # The built-in engine is a trainer like any other, its settings nested by dotted path.
    hidden = page.locator(".trainer[data-trainer=numpy] tr[data-setting='model.hidden']")
    expect(hidden.locator(".type")).to_have_text("list of integer")
    expect(hidden.locator(".default")).to_have_text("[64]")
    # A dataset is named by `name`, `upload` or `upload_id`: none is required alone.
    upload = page.locator(".trainer[data-trainer=numpy] tr[data-setting='dataset.upload']")
    expect(upload.locator(".type")).to_have_text("string or null")
    expect(upload.locator(".default")).to_have_text("null")
    # A trainer whose only worker is gone is shown as such.
    gone = page.locator(".trainer[data-trainer=gone]")
    expect(gone.locator(".live")).to_contain_text("offered by no live worker")


def test_a_failed_trial_page_shows_its_traceback_and_a_complete_one_none(
    server: Server, page: Page
) -> None:
    failed = server.post("/studies", plugin_study("raises"))["id"]
    complete = server.post("/studies", plugin_study("quadratic"))["id"]
    ended(server, failed)
    ended(server, complete)
    sign_in(page, server)
    page.goto(f"{server.base}/#/studies/{failed}/trials/0")
    expect(page.locator(".summary .reason")).to_have_text(
        "error: ValueError: cannot train at x=0.5"
    )
    traceback = page.locator("pre.traceback")
    expect(traceback).to_be_visible()
    expect(traceback).to_contain_text("Traceback (most recent call last):")
    expect(traceback).to_contain_text("faulty_trainers.py")
    expect(traceback).to_contain_text("in helper")
    lines = traceback.inner_text().splitlines()
    assert lines[-1] == "ValueError: cannot train at x=0.5", lines
    page.goto(f"{server.base}/#/studies/{complete}/trials/0")
    expect(page.locator("h1 .badge")).to_have_text("complete")
    expect(page.locator(".traceback-card")).to_be_hidden()
