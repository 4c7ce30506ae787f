"""The trial page, the presets page, the Pareto chart, failed trials and the table's sort and
filter, in a real browser. The studies are made once, finished, and shared by every test."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest
import yaml
from playwright.sync_api import Page, expect

from hpsearch.search.definition import StudyDefinition
from tests.api.conftest import bearer
from tests.browser.conftest import Server, sign_in
from tests.conftest import tiny_study

WAIT_S = 120


@dataclass
class Studies:
    """Finished studies: `sgd`'s trial 0 completes and its trial 1 diverges; `pareto` has two
    objectives; `c2f` is coarse_to_fine over a space with a conditional parameter."""

    sgd: dict
    pareto: dict
    c2f: dict


def finished(server: Server, study_id: int) -> dict:
    """The study once it has ended."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        study = server.get(f"/studies/{study_id}")
        if study["finished_at"] is not None:
            return study
        time.sleep(0.3)
    raise AssertionError(f"study {study_id} did not end: {study}")


@pytest.fixture(scope="module")
def studies(server: Server) -> Studies:
    # sgd at a learning rate of 1e15 diverges in its first epoch: a failed trial with a reason.
    sgd = tiny_study(
        name="sgd-with-a-failure",
        training={"optimizer": "sgd", "learning_rate": 0.1, "epochs": 5, "batch_size": 32},
        space={"training.learning_rate": {"type": "float", "low": 0.01, "high": 1e15, "log": True}},
        enqueue=[{"training.learning_rate": 0.1}, {"training.learning_rate": 1e15}],
    )
    pareto = tiny_study(
        name="accuracy-against-time",
        space={
            "training.learning_rate": {"type": "float", "low": 0.001, "high": 0.5, "log": True},
            "training.epochs": {"type": "int", "low": 1, "high": 8},
        },
        strategy={"type": "nsga2", "seed": 3},
        objective=[
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "train_seconds", "direction": "minimize"},
        ],
        budget={"trials": 10, "parallelism": 2},  # importances need 10 complete trials
    )
    c2f = tiny_study(
        name="coarse-to-fine-conditional",
        space={
            "training.learning_rate": {"type": "float", "low": 0.001, "high": 0.5, "log": True},
            "training.batch_size": {"type": "int", "low": 8, "high": 64},
            "training.optimizer": {"type": "categorical", "choices": ["sgd", "momentum"]},
            "training.momentum": {
                "type": "float",
                "low": 0.5,
                "high": 0.95,
                "when": {"training.optimizer": ["momentum"]},
            },
        },
        # 10 trials a round: the full round's are enough for importances, which set the axes.
        strategy={"type": "coarse_to_fine", "seed": 2, "rounds": 3, "samples_per_round": 10},
        budget={"trials": 30, "parallelism": 2},
    )
    ids = [server.post("/studies", s)["id"] for s in (sgd, pareto, c2f)]
    return Studies(*(finished(server, i) for i in ids))


def shown(value: float) -> str:
    """A value as the dashboard writes it (JavaScript's toPrecision(4), whole numbers as is)."""
    return str(int(value)) if value.is_integer() else f"{value:#.4g}"


def chart(page: Page, selector: str, expression: str) -> object:
    """Wait until the Plotly chart at `selector` has data, then evaluate `expression` on it
    (`data` is its traces)."""
    page.wait_for_function(f"document.querySelector('{selector}').data?.length > 0")
    return page.locator(selector).evaluate(
        f"chart => {{ const data = chart.data; return {expression}; }}"
    )


def test_the_trial_page_shows_params_config_curves_and_timings(
    server: Server, studies: Studies, page: Page
) -> None:
    study_id = studies.sgd["id"]
    trial = server.get(f"/studies/{study_id}/trials/0")
    sign_in(page, server)
    page.goto(f"{server.base}/#/studies/{study_id}/trials/0")
    expect(page.locator("h1 .badge")).to_have_text("complete")
    expect(page.locator(".study-link")).to_have_text("sgd-with-a-failure")
    expect(page.locator("table.params")).to_contain_text("training.learning_rate")
    expect(page.locator("table.params")).to_contain_text("0.1000")
    assert json.loads(page.locator("pre.config").inner_text()) == trial["config"]
    steps = [p["step"] for p in trial["curve"]]
    assert chart(page, "#loss-chart", "data.map(t => t.name)") == ["val_loss", "train_loss"]
    assert chart(page, "#loss-chart", "data[0].x") == steps
    assert chart(page, "#metric-chart", "data[0].name") == "val_accuracy"
    assert chart(page, "#metric-chart", "data[0].x") == steps
    for label in ("Queued", "Started", "Finished", "Ran for", "Worker"):
        expect(page.locator(".summary")).to_contain_text(label)
    # A trial of well under a second ran for some milliseconds, not "0s".
    ran_ms = (
        1000
        * (
            datetime.fromisoformat(trial["finished_at"])
            - datetime.fromisoformat(trial["started_at"])
        ).total_seconds()
    )
    assert ran_ms < 1000, trial
    ran = page.locator(".summary > div", has_text="Ran for").inner_text()
    assert re.fullmatch(r"Ran for\s+(\d+) ms", ran) and abs(int(ran.split()[-2]) - ran_ms) <= 1, ran
    expect(page.locator(".summary .value")).to_have_text(shown(trial["value"]))

    # A finished trial never changes again: once drawn, its page stops polling. Two poll
    # periods (util.js's POLL_MS, 2 s) would otherwise bring two rounds of requests.
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.wait_for_timeout(4500)
    assert [url for url in asked if "/api/" in url] == []


def test_a_failed_trial_page_and_the_failed_list_give_the_reason(
    server: Server, studies: Studies, page: Page
) -> None:
    study_id = studies.sgd["id"]
    reason = server.get(f"/studies/{study_id}/trials/1")["reason"]
    assert reason and "diverged" in reason
    sign_in(page, server)
    page.goto(f"{server.base}/#/studies/{study_id}")
    failures = page.locator("ul.failures")
    expect(failures).to_contain_text(f"trial 1: {reason}")
    failures.locator("a", has_text="trial 1").click()
    expect(page.locator("h1 .badge")).to_have_text("failed")
    expect(page.locator(".summary .reason")).to_have_text(reason)


def test_the_table_sorts_filters_and_opens_a_trial(
    server: Server, studies: Studies, page: Page
) -> None:
    study_id = studies.sgd["id"]
    trials = server.get(f"/studies/{study_id}/trials")["data"]
    sign_in(page, server)
    page.goto(f"{server.base}/#/studies/{study_id}")
    rows = page.locator("tr.trial")
    expect(rows).to_have_count(len(trials))
    numbers = lambda: [int(n) for n in rows.evaluate_all("rs => rs.map(r => r.dataset.number)")]  # noqa: E731
    assert numbers() == sorted(t["number"] for t in trials)

    page.click("th[data-key=value]")  # ascending, no value (the failed) last
    expect(page.locator("th[data-key=value]")).to_contain_text("▲")
    valued = sorted((t for t in trials if t["value"] is not None), key=lambda t: t["value"])
    assert numbers()[: len(valued)] == [t["number"] for t in valued]
    page.click("th[data-key=value]")  # descending, still last
    expect(page.locator("th[data-key=value]")).to_contain_text("▼")
    assert numbers()[: len(valued)] == [t["number"] for t in reversed(valued)]

    page.select_option("select[name=state]", "failed")
    failed = sorted(t["number"] for t in trials if t["state"] == "failed")
    expect(rows).to_have_count(len(failed))
    page.select_option("select[name=state]", "")
    page.fill("input[name=filter]", "diverged")
    expect(rows).to_have_count(len(failed))
    page.fill("input[name=filter]", "")

    page.locator("tr.trial[data-number='0'] a").click()
    expect(page).to_have_url(f"{server.base}/#/studies/{study_id}/trials/0")
    expect(page.locator("h1")).to_contain_text("Trial 0")


def test_publishing_from_the_trial_page_makes_version_1_then_2(
    server: Server, studies: Studies, page: Page
) -> None:
    study_id = studies.sgd["id"]
    sign_in(page, server)
    page.goto(f"{server.base}/#/studies/{study_id}/trials/0")
    expect(page.locator("h1 .badge")).to_have_text("complete")
    page.fill("form.publish input[name=name]", "iris-sgd")
    page.select_option("form.publish select[name=visibility]", "public")
    for version in (1, 2):
        page.click("form.publish button[type=submit]")
        expect(page.locator(".published .ref")).to_have_text(f"local/iris-sgd@{version}")
    expect(page.locator(".publish-error")).to_have_text("")

    # The API's refusals are shown with the field they are about.
    page.fill("form.publish input[name=name]", "no spaces allowed")
    page.click("form.publish button[type=submit]")
    expect(page.locator(".publish-error")).to_contain_text("name")
    expect(page.locator(".published")).to_have_text("")
    page.goto(f"{server.base}/#/studies/{study_id}/trials/1")
    expect(page.locator("h1 .badge")).to_have_text("failed")
    page.fill("form.publish input[name=name]", "iris-sgd")
    page.click("form.publish button[type=submit]")
    expect(page.locator(".publish-error")).to_contain_text("trial_number: trial 1 is failed")


def test_copy_as_study_file_gives_a_valid_study_of_exactly_this_config(
    server: Server, studies: Studies, page: Page
) -> None:
    study_id = studies.sgd["id"]
    trial = server.get(f"/studies/{study_id}/trials/0")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, server)
    page.goto(f"{server.base}/#/studies/{study_id}/trials/0")
    expect(page.locator("h1 .badge")).to_have_text("complete")
    page.click("button[name=copy]")
    text = page.locator("pre.study-file").inner_text()
    expect(page.locator(".copied")).not_to_have_text("")
    definition = StudyDefinition.model_validate(yaml.safe_load(text))
    assert definition.budget.trials == 1 and definition.space == {}
    assert definition.trial_config({}).model_dump(mode="json") == trial["config"]
    # And the API takes it as it is (JSON, which the page offers as YAML too).
    answer = httpx.post(
        f"{server.base}/api/v1/studies",
        content=text,
        headers={**bearer(server.token), "Content-Type": "application/json"},
    )
    assert answer.status_code == 201, answer.text


def test_the_presets_page_lists_versions_with_provenance_and_exports(
    server: Server, studies: Studies, page: Page
) -> None:
    study = studies.sgd
    best = study["best_trial"]
    published = server.post(
        "/presets", {"study_id": study["id"], "trial_number": best["number"], "name": "listed"}
    )
    sign_in(page, server)
    page.click("#nav a[href='#/presets']")
    card = page.locator(".preset[data-preset='local/listed']")
    row = card.locator(f"tr[data-ref='{published['ref']}']")
    expect(row.locator(".from")).to_contain_text(f"study {study['id']}, trial {best['number']}")
    expect(row).to_contain_text(published["dataset_hash"][:12])
    expect(row).to_contain_text(published["engine_version"])
    expect(row).to_contain_text("admin")
    expect(row.locator(".values")).to_contain_text(
        f"val_accuracy {shown(best['values']['val_accuracy'])}"
    )

    with page.expect_download() as download:
        row.locator("button[data-format=yaml]").click()
    text = download.value.path().read_text()
    # The download is a study file of the preset's config, headed by the preset's reference.
    assert text.startswith(f"# Preset {published['ref']}")
    definition = StudyDefinition.model_validate(yaml.safe_load(text))
    assert definition.base_config() == published["config"] and definition.space == {}

    row.locator(".from a", has_text="trial").click()
    expect(page).to_have_url(f"{server.base}/#/studies/{study['id']}/trials/{best['number']}")


def test_a_multi_objective_study_draws_its_pareto_front(
    server: Server, studies: Studies, page: Page
) -> None:
    study = studies.pareto
    trials = server.get(f"/studies/{study['id']}/trials")["data"]
    complete = [t for t in trials if t["state"] == "complete"]
    front = sorted(
        (t["values"]["val_accuracy"], t["values"]["train_seconds"]) for t in study["pareto_front"]
    )
    sign_in(page, server)
    page.goto(f"{server.base}/#/studies/{study['id']}")
    expect(page.locator(".card.pareto")).to_be_visible()
    names = chart(page, "#pareto-chart", "data.map(t => t.name)")
    assert names == ["dominated", "Pareto front"]
    drawn = chart(page, "#pareto-chart", "data[1].x.map((x, i) => [x, data[1].y[i]])")
    assert sorted(map(tuple, drawn)) == front
    assert chart(page, "#pareto-chart", "data[1].mode") == "lines+markers"
    total = chart(page, "#pareto-chart", "data[0].x.length + data[1].x.length")
    assert total == len(complete)
    # A point opens its trial.
    # Plotly takes clicks on the layer above its points: click where the point is drawn.
    point = page.locator("#pareto-chart .scatterlayer .trace").nth(1).locator(".point").first
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page).to_have_url(re.compile(rf"#/studies/{study['id']}/trials/\d+$"))
    # (a dominated point may lie under the front's, and Plotly picks the nearest)
    assert int(page.url.rsplit("/", 1)[1]) in {t["number"] for t in complete}

    # A single-objective study has no such card.
    page.goto(f"{server.base}/#/studies/{studies.sgd['id']}")
    expect(page.locator("h1 .badge")).to_have_text("complete")
    expect(page.locator(".card.pareto")).to_be_hidden()


def test_importances_draw_one_bar_per_searched_parameter(
    server: Server, studies: Studies, page: Page
) -> None:
    study = studies.pareto
    answer = server.get(f"/studies/{study['id']}/importances")
    assert answer["reason"] is None, answer
    searched = ["training.epochs", "training.learning_rate"]
    assert sorted(answer["importances"]) == searched
    sign_in(page, server)
    page.goto(f"{server.base}/#/studies/{study['id']}")
    # One bar per parameter, named short ("epochs"), the full name in its hover.
    assert sorted(chart(page, "#importances-chart", "data[0].customdata")) == searched
    assert sorted(chart(page, "#importances-chart", "data[0].y")) == ["epochs", "learning_rate"]
    shares = chart(page, "#importances-chart", "data[0].x")
    assert sum(shares) == pytest.approx(1)


def test_coarse_to_fine_draws_each_arms_box_per_round_on_the_most_important_axes(
    server: Server, studies: Studies, page: Page
) -> None:
    study = studies.c2f
    strategy_state = study["strategy_state"]
    rounds = strategy_state["rounds"]
    # 1/4, 1/2 and all of the study's 5 epochs.
    assert [r["epochs"] for r in rounds] == [1, 2, 5]
    boxes = [(r, arm) for r in rounds for arm in r["arms"]]
    trials = server.get(f"/studies/{study['id']}/trials")["data"]
    importances = server.get(f"/studies/{study['id']}/importances")
    assert importances["reason"] is None, importances
    numeric = ["training.learning_rate", "training.batch_size", "training.momentum"]
    top = [name for name in importances["importances"] if name in numeric]
    sign_in(page, server)
    page.goto(f"{server.base}/#/studies/{study['id']}")
    expect(page.locator(".card.boxes")).to_be_visible()
    expect(page.locator(".boxes tbody tr")).to_have_count(len(boxes))
    # Each round's trials (10 each, as the study says) beside its epochs.
    assert [r["trials"] for r in rounds] == [10, 10, 10]
    expect(page.locator(".boxes tbody tr").first.locator("td").nth(1)).to_have_text("10")
    # with how many of them opened it as the round before's best, trained longer.
    promoted = rounds[2]["promoted"]
    # At most three quarters of the last round's 10, rounded up: fewer when the round before's
    # best trials include arms dropped since.
    assert 1 <= promoted <= 8
    last = page.locator(".boxes tbody tr").nth(len(boxes) - len(rounds[2]["arms"]))
    expect(last.locator("td").nth(1)).to_have_text(f"10 ({promoted} promoted)")
    # The axes: the two most important numeric parameters, once the importances are in.
    expect(page.locator(".box-x")).to_have_value(top[0])
    expect(page.locator(".box-y")).to_have_value(top[1])
    chart(page, "#boxes-chart", "data")
    # One rectangle per arm and round with a box on both axes, labelled with its epochs.
    shapes = page.locator("#boxes-chart").evaluate("c => c.layout.shapes")
    drawn = [(r, arm) for r, arm in boxes if top[0] in r["arms"][arm] and top[1] in r["arms"][arm]]
    assert [s["label"]["text"] for s in shapes] == [
        f"{arm} · round {r['round']} · {r['epochs']} ep" for r, arm in drawn
    ]
    expect(page.locator("#boxes-chart .shapelayer path")).to_have_count(len(drawn))
    first_round, first_arm = drawn[0]
    box = first_round["arms"][first_arm][top[0]]
    assert (shapes[0]["x0"], shapes[0]["x1"]) == (box["low"], box["high"])
    points = chart(page, "#boxes-chart", "data[0].x.length + data[1].x.length")
    assert points == sum(top[0] in t["params"] and top[1] in t["params"] for t in trials)
    # The result: the winning arm, and each arm's best.
    winner = strategy_state["result"]["winner"]
    expect(page.locator(".boxes-result strong")).to_have_text(winner)
    expect(page.locator(".boxes-result li")).to_have_count(len(rounds[0]["arms"]))

    # The controls: learning rate on x, one arm only.
    page.locator(".box-x").select_option("training.learning_rate")
    page.locator(".box-arm").select_option("sgd")
    page.wait_for_function(
        "document.querySelector('#boxes-chart').layout.xaxis.title.text === 'learning_rate'"
    )
    shapes = page.locator("#boxes-chart").evaluate("c => c.layout.shapes")
    assert shapes and all(s["label"]["text"].startswith("sgd · ") for s in shapes)
    assert page.locator("#boxes-chart").evaluate("c => c.layout.xaxis.type") == "log"
    sgd_box = rounds[-1]["arms"].get("sgd", {}).get("training.learning_rate")
    if sgd_box is not None:
        assert (shapes[-1]["x0"], shapes[-1]["x1"]) == (sgd_box["low"], sgd_box["high"])

    # Parallel coordinates keep the trials without the conditional momentum: at "not set".
    complete = [t for t in trials if t["state"] == "complete"]
    lacking = [t for t in complete if "training.momentum" not in t["params"]]
    assert lacking and len(lacking) < len(complete), trials
    dimensions = chart(page, "#parcoords-chart", "data[0].dimensions")
    by_label = {d["label"]: d for d in dimensions}
    # A coarse round's trial shows its epochs; a full one's (the study's own) as "not set".
    assert set(by_label) == {
        "batch_size",
        "epochs",
        "learning_rate",
        "momentum",
        "optimizer",
        "val_accuracy",
    }
    assert all(len(d["values"]) == len(complete) for d in dimensions)
    momentum = by_label["momentum"]
    assert momentum["ticktext"][0] == "not set"
    assert momentum["values"].count(momentum["tickvals"][0]) == len(lacking)
    lines = page.locator("#parcoords-chart").evaluate(
        "c => c._fullData[0].dimensions[0].values.length"
    )
    assert lines == len(complete)
