"""pbt's population chart, in a real browser: a point per member and interval, copies marked."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server, sign_in
from tests.browser.test_dashboard_pages import chart, finished
from tests.worker.test_pbt_study import EPOCHS, INTERVAL, POPULATION, pbt_study


def test_the_population_chart_draws_every_member_and_marks_the_copies(
    server: Server, page: Page
) -> None:
    study = finished(server, server.post("/studies", pbt_study(name="pbt-chart"))["id"])
    trials = server.get(f"/studies/{study['id']}/trials")["data"]
    copies = sorted(t["number"] for t in trials if "copied" in (t["lineage"] or {}))
    assert copies, "the bottom quarter copies every generation"
    sign_in(page, server)
    page.goto(f"{server.base}/#/studies/{study['id']}")
    expect(page.locator(".card.population")).to_be_visible(timeout=30_000)  # a loaded machine
    # Per member: its own lines, its copies' dashed lines, and its points.
    assert chart(page, "#population-chart", "data.length") == 3 * POPULATION
    points = chart(page, "#population-chart", "data.filter(t => t.mode === 'markers')")
    drawn = sorted(number for trace in points for number in trace["customdata"])  # type: ignore[union-attr]
    assert drawn == sorted(t["number"] for t in trials)
    assert {x for trace in points for x in trace["x"]} == set(  # type: ignore[union-attr]
        range(INTERVAL, EPOCHS + 1, INTERVAL)
    )
    diamonds = sorted(
        number
        for trace in points  # type: ignore[union-attr]
        for number, symbol in zip(trace["customdata"], trace["marker"]["symbol"], strict=True)
        if symbol == "diamond"
    )
    assert diamonds == copies
    dashed = chart(
        page, "#population-chart", "data.filter(t => t.line?.dash === 'dash').map(t => t.x)"
    )
    # Each copy is one dashed segment (from the copied member's point to its own) and a gap.
    assert sum(len(x) for x in dashed) == 3 * len(copies)  # type: ignore[union-attr]
