"""The dashboard in a real browser against a real server running real studies."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server, sign_in
from tests.conftest import tiny_study

OPTIMIZERS = ["sgd", "momentum", "adam"]
WAIT_MS = 60_000


def optimizer_study(name: str, trials: int = 12) -> dict:
    """A study that runs for some seconds and tries several optimizers."""
    return tiny_study(
        name=name,
        # Trials of about half a second each: the study cannot end between two requests.
        dataset={"name": "digits"},
        model={"type": "mlp", "hidden": [32]},
        training={"optimizer": "adam", "learning_rate": 0.05, "epochs": 60, "batch_size": 16},
        space={
            "training.learning_rate": {"type": "float", "low": 0.001, "high": 0.5, "log": True},
            "training.optimizer": {"type": "categorical", "choices": OPTIMIZERS},
        },
        budget={"trials": trials, "parallelism": 2},
    )


def test_the_pages_and_the_chart_library_need_no_token(server: Server, page: Page) -> None:
    page.goto(server.base)
    expect(page.locator("form.sign-in")).to_be_visible()
    assert page.evaluate("typeof Plotly.react") == "function"  # served by the app, not a CDN


def test_a_wrong_token_is_refused(server: Server, page: Page) -> None:
    page.goto(server.base)
    page.fill("input[name=token]", "hps_not-a-token")
    page.click("button[type=submit]")
    expect(page.locator("form.sign-in .error")).to_contain_text("not valid")


def test_the_studies_list_shows_only_your_teams_studies(server: Server, page: Page) -> None:
    ours = server.post("/studies", tiny_study(name="ours-listed"))
    bob = server.make_token("bob", "beta")
    theirs = server.post("/studies", tiny_study(name="theirs-hidden"), token=bob, team="beta")
    sign_in(page, server)
    row = page.locator(f"tr[data-study='{ours['id']}']")
    expect(row).to_contain_text("ours-listed")
    expect(row).to_contain_text("random")
    expect(row.locator(".progress")).to_have_text("4 / 4", timeout=WAIT_MS)
    # The best value says what it is a value of.
    best = server.get(f"/studies/{ours['id']}")["best_trial"]["value"]
    expect(row.locator(".best")).to_have_text(f"{best:#.4g} val_accuracy")
    expect(page.locator(f"tr[data-study='{theirs['id']}']")).to_have_count(0)
    expect(page.locator("table.studies")).not_to_contain_text("theirs-hidden")
    assert [o.strip() for o in page.locator("#team option").all_inner_texts()] == [
        "All teams",
        "local (admin)",
    ]


def test_the_study_page_follows_a_running_study(server: Server, page: Page, tmp_path: Path) -> None:
    study = server.post("/studies", optimizer_study("live-optimizers"))
    # Held part-way (cancelled at once), so that the page surely sees it before its end.
    server.post(f"/studies/{study['id']}/cancel")
    sign_in(page, server)
    page.click(f"tr[data-study='{study['id']}'] a")
    expect(page.locator("h1 .badge")).to_have_text("cancelled")
    progress = page.locator(".progress-text")
    expect(progress).not_to_have_text("12 / 12 trials")
    # Live without a reload: resumed, the count runs on while the page stays the same document.
    page.evaluate("window.notReloaded = true")
    server.post(f"/studies/{study['id']}/resume")
    expect(page.locator("h1 .badge")).to_have_text("complete", timeout=WAIT_MS)
    expect(progress).to_have_text("12 / 12 trials")
    assert page.evaluate("window.notReloaded") is True

    # Clicking a trial draws its curves (val and train loss), one point per epoch. A complete
    # one: the cancel may have stopped the first trials before their first epoch.
    trials = server.get(f"/studies/{study['id']}/trials")["data"]
    number = next(t["number"] for t in trials if t["state"] == "complete")
    row = page.locator(f"tr.trial[data-number='{number}']")
    row.click()
    expect(row).to_have_class("trial selected")
    page.wait_for_function(
        "document.querySelector('#curves-chart').data?.length === 2"
        " && document.querySelector('#curves-chart').data[0].x.length > 0"
    )
    curve = server.get(f"/studies/{study['id']}/trials/{number}")["curve"]
    drawn = page.evaluate("document.querySelector('#curves-chart').data[0].x")
    assert drawn == [point["step"] for point in curve]

    # One line per optimizer that has a complete trial.
    tried = sorted({t["params"]["training.optimizer"] for t in trials if t["state"] == "complete"})
    assert len(tried) > 1, trials
    page.wait_for_function(
        f"document.querySelector('#optimizers-chart').data?.length === {len(tried)}"
        " && document.querySelector('#optimizers-chart').data.every(t => t.x.length > 0)"
    )
    names = page.evaluate("document.querySelector('#optimizers-chart').data.map(t => t.name)")
    assert sorted(name.split(" ")[0] for name in names) == tried
    # Each line is its optimizer's best trial's curve of the objective's metric (not val_loss),
    # named with how many trials that optimizer had.
    counts = Counter(t["params"]["training.optimizer"] for t in trials)
    for name in names:
        optimizer, number = name.split(" ")[0], int(re.search(r"#(\d+)", name)[1])
        count = counts[optimizer]
        assert name == f"{optimizer} (#{number}; {count} trial{'' if count == 1 else 's'})"
    expect(page.locator(".optimizers-metric")).to_have_text("val_accuracy")
    first = page.evaluate("document.querySelector('#optimizers-chart').data[0]")
    number = int(re.search(r"#(\d+)", first["name"])[1])
    curve = server.get(f"/studies/{study['id']}/trials/{number}")["curve"]
    assert first["y"] == [point["val_accuracy"] for point in curve]
    # A picture of the page, drawn, in the test's own folder (the README's are made by
    # scripts/screenshots.py).
    picture = tmp_path / "study.png"
    page.screenshot(path=picture, full_page=True)
    assert picture.read_bytes().startswith(b"\x89PNG")
    page.click("a.brand")
    expect(page.locator(f"tr[data-study='{study['id']}'] .badge")).to_have_text("complete")
