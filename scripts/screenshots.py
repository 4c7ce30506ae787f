"""Make the README's dashboard pictures (docs/dashboard-*.png) from one reproducible scene.

Usage (from the checkout's root; needs Debian's /usr/bin/chromium, which
scripts/install-system-deps.sh installs, and takes a minute or two)::

    .venv/bin/python scripts/screenshots.py

It starts `hpsearch serve` of this checkout on a free port with a temporary SQLite database,
signs in with the admin token of the first start, and through the REST API runs

- a coarse_to_fine study of a softmax classifier on `wine` (learning rate, optimizer, weight
  decay; 30 trials in 3 rounds), waited for until it is complete, one of whose trials (the
  best) is published as a preset twice (versions 1 and 2);
- a tpe study of an MLP on `digits` over six optimizers, learning rate, batch size and width
  (median pruning, 400 trials), still running when the pictures are taken, some 20 trials in.

Headless chromium (driven by Playwright, never a browser it downloads) then saves full-page
pictures at 1400x1000: the studies list, the running tpe study, the finished coarse_to_fine
study with its boxes per round (drawn over the trials and as a table), the best coarse_to_fine
trial, the presets page and the trainers page. The server is stopped by its pid at the end.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `tests` below is this checkout's

import httpx  # noqa: E402
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, serve, sign_in  # noqa: E402

DOCS = REPO / "docs"
WAIT_S = 300
# The tpe study is pictured once this many trials have finished (of its 400).
TPE_FINISHED = 20
# Charts are drawn once the study's trials and the chosen trials' curves have been fetched.
WAIT_MS = 60_000

C2F_STUDY = {
    "name": "wine-softmax-coarse-to-fine",
    "dataset": {"name": "wine", "split": {"validation": 0.25, "test": 0.2, "seed": 0}},
    "model": {"type": "softmax"},
    "training": {
        "loss": "cross_entropy",
        "optimizer": "adam",
        "learning_rate": 0.01,
        "batch_size": 32,
        "epochs": 40,
        "seed": 0,
    },
    "space": {
        "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "training.optimizer": {"type": "categorical", "choices": ["sgd", "momentum", "adam"]},
        "training.weight_decay": {"type": "float", "low": 1e-6, "high": 0.1, "log": True},
    },
    "strategy": {"type": "coarse_to_fine", "seed": 3, "rounds": 3, "samples_per_round": 10},
    "objective": {"metric": "val_loss", "direction": "minimize"},
    "budget": {"trials": 30, "parallelism": 2},
}


TPE_STUDY = {
    "name": "digits-mlp-tpe",
    "dataset": {"name": "digits", "split": {"validation": 0.2, "test": 0.2, "seed": 0}},
    "model": {"type": "mlp", "hidden": [256], "activation": "relu", "init": "he"},
    "training": {
        "loss": "cross_entropy",
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 32,
        "epochs": 60,
        "seed": 0,
        "stopping": {"patience": 8},
    },
    # momentum is conditional: the parallel coordinates show the trials without it at "—".
    "space": {
        "training.optimizer": {
            "type": "categorical",
            "choices": ["sgd", "momentum", "nag", "adagrad", "rmsprop", "adam"],
        },
        "training.learning_rate": {"type": "float", "low": 1e-4, "high": 0.5, "log": True},
        "training.momentum": {
            "type": "float",
            "low": 0.5,
            "high": 0.99,
            "when": {"training.optimizer": ["momentum", "nag"]},
        },
        "training.batch_size": {"type": "int", "low": 16, "high": 128, "log": True},
        "model.hidden": {"type": "categorical", "choices": [[128], [256], [512, 256]]},
    },
    "strategy": {"type": "tpe", "seed": 42},
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    # Far more trials than are pictured: the study is still running when they are taken.
    "budget": {"trials": 400, "parallelism": 2},
    "pruner": {"type": "median", "warmup_epochs": 10},
}


class Api:
    """The REST API as the admin."""

    def __init__(self, base: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def post(self, path: str, body: dict) -> dict:
        response = self.client.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def get(self, path: str) -> dict:
        response = self.client.get(path)
        response.raise_for_status()
        return response.json()

    def wait(self, study_id: int, done: str, ready: Callable[[dict], bool]) -> dict:
        """The study once `ready(study)`; `done` says what is awaited, for the error."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            study = self.get(f"/studies/{study_id}")
            if ready(study):
                return study
            time.sleep(0.5)
        raise RuntimeError(f"study {study_id} is not {done} after {WAIT_S} s: {study}")


def shoot(page: Page, name: str) -> None:
    path = DOCS / f"{name}.png"
    page.mouse.move(0, 0)  # no hover: no chart toolbar, no highlighted row
    page.screenshot(path=path, full_page=True)
    print(f"wrote {path.relative_to(REPO)}")


def charts_drawn(page: Page, *ids: str, traces: int = 1) -> None:
    """Wait until each Plotly chart `#id` has at least `traces` traces with points."""
    for chart in ids:
        page.wait_for_function(
            f"(document.querySelector('#{chart}').data ?? [])"
            f".filter(t => (t.x ?? t.dimensions)?.length > 0).length >= {traces}",
            timeout=WAIT_MS,
        )


def overlay_curves(page: Page, numbers: list[int]) -> None:
    """Click these trials' rows so that their learning curves (val and train loss) are drawn."""
    for number in numbers:
        page.locator(f"tr.trial[data-number='{number}'] td:nth-child(2)").click()
    charts_drawn(page, "curves-chart", traces=2 * len(numbers))
    page.locator(".trials-table .table-wrap").evaluate("table => { table.scrollTop = 0; }")


def some_trials(api: Api, study: dict, count: int = 3) -> list[int]:
    """The best trial and the best of other optimizers: `count` trials worth overlaying."""
    trials = api.get(f"/studies/{study['id']}/trials")["data"]
    complete = [t for t in trials if t["state"] == "complete"]
    sign = -1 if study["objectives"][0]["direction"] == "maximize" else 1
    chosen: dict[str, int] = {}
    for trial in sorted(complete, key=lambda t: sign * t["value"]):
        chosen.setdefault(trial["params"].get("training.optimizer", ""), trial["number"])
    return list(chosen.values())[:count]


def pictures(page: Page, api: Api, base: str, c2f: dict, tpe: dict) -> None:
    """The six pictures, the running tpe study's first."""

    # The running tpe study, once its charts are drawn and its progress has an ETA.
    page.goto(f"{base}/#/studies/{tpe['id']}")
    expect(page.locator("h1 .badge")).to_have_text("running")
    expect(page.locator(".eta")).not_to_have_text("—", timeout=WAIT_MS)
    charts_drawn(page, "best-chart", "parcoords-chart", "importances-chart")
    charts_drawn(page, "optimizers-chart", traces=3)
    overlay_curves(page, some_trials(api, tpe))
    shoot(page, "dashboard-study")

    # The list: one study complete, one running.
    page.click("a.brand")
    expect(page.locator(f"tr[data-study='{c2f['id']}'] .badge")).to_have_text("complete")
    expect(page.locator(f"tr[data-study='{tpe['id']}'] .badge")).to_have_text("running")
    shoot(page, "dashboard-studies")

    # The finished coarse_to_fine study, with its box of every round.
    page.goto(f"{base}/#/studies/{c2f['id']}")
    expect(page.locator("h1 .badge")).to_have_text("complete")
    boxes = sum(len(r["arms"]) for r in c2f["strategy_state"]["rounds"])
    expect(page.locator(".boxes tbody tr")).to_have_count(boxes)
    charts_drawn(page, "best-chart", "parcoords-chart", "importances-chart", "boxes-chart")
    charts_drawn(page, "optimizers-chart", traces=2)
    overlay_curves(page, some_trials(api, c2f))
    shoot(page, "dashboard-study-c2f")

    # Its best trial, which was published.
    best = c2f["best_trial"]["number"]
    page.goto(f"{base}/#/studies/{c2f['id']}/trials/{best}")
    expect(page.locator("h1")).to_contain_text(f"Trial {best}")
    expect(page.locator("h1 .badge")).to_have_text("complete")
    charts_drawn(page, "loss-chart", traces=2)
    charts_drawn(page, "metric-chart")
    expect(page.locator("table.params")).to_contain_text("training.optimizer")
    shoot(page, "dashboard-trial")

    page.click("#nav a[href='#/presets']")
    expect(page.locator(".preset tr[data-ref]")).to_have_count(2)
    shoot(page, "dashboard-presets")

    # The trainers the local pool offers: the built-in engine and the example ridge plugin.
    page.click("#nav a[href='#/trainers']")
    expect(page.locator(".trainer[data-trainer=ridge] .live")).to_contain_text("1 live worker")
    shoot(page, "dashboard-trainers")


def finished_c2f_with_presets(api: Api) -> dict:
    """Run the coarse_to_fine study to its end; publish its best trial twice."""
    c2f = api.post("/studies", C2F_STUDY)
    c2f = api.wait(c2f["id"], "complete", lambda s: s["status"] == "complete")
    print(f"{c2f['name']}: complete, best trial {c2f['best_trial']['number']}")
    for visibility in ("team", "public"):  # versions 1 and 2
        body = {
            "study_id": c2f["id"],
            "trial_number": c2f["best_trial"]["number"],
            "name": "wine-softmax",
            "visibility": visibility,
        }
        print(f"published {api.post('/presets', body)['ref']}")
    return c2f


def running_tpe(api: Api) -> dict:
    """Start the tpe study; return it once some trials have finished, still running."""
    tpe = api.post("/studies", TPE_STUDY)
    tpe = api.wait(
        tpe["id"],
        f"{TPE_FINISHED} trials in",
        lambda s: s["trials_finished"] >= TPE_FINISHED or s["finished_at"] is not None,
    )
    if tpe["status"] != "running":
        raise RuntimeError(f"the tpe study is no longer running: {tpe}")
    print(f"{tpe['name']}: {tpe['trials_finished']} trials finished")
    return tpe


def main() -> None:
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} missing: run scripts/install-system-deps.sh")
    with tempfile.TemporaryDirectory(prefix="hpsearch-screenshots-") as folder:
        process, base, token = serve(Path(folder), f"sqlite:///{folder}/hpsearch.db")
        try:
            api = Api(base, token)
            c2f = finished_c2f_with_presets(api)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
                )
                try:
                    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                    page.set_default_timeout(30_000)
                    # Signed in before the tpe study starts: its trials are quick, and the
                    # pictures should show it early on.
                    sign_in(page, base, token)
                    pictures(page, api, base, c2f, running_tpe(api))
                finally:
                    browser.close()
        finally:
            process.stop()


if __name__ == "__main__":
    main()
