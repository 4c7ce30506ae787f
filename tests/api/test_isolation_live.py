"""On a real `hpsearch serve`: no request body reaches another team's objects, and no input
reaches a 500 or stores a study that can never run.

Team alpha owns an uploaded dataset, a study trained on it and a team-only preset published from
it. Bob, of team beta, tries every way of naming them inside a request body (study files: base
config, space choices, grid values, whole-section choices, enqueue, warm start; preset publishing;
uploads and filters by team). Each is refused as if the object did not exist, leaks none of its
content, and stores nothing; the same body naming beta's own upload goes through, so the refusal
is about the team and not about the shape of the request.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import bearer, table_csv, token_maker
from tests.conftest import tiny_study
from tests.servers import serving_api

COLUMNS = ("x1", "x2", "colour")


@dataclass
class Live:
    alpha: httpx.Client  # ana, member of alpha
    beta: httpx.Client  # bob, member of beta only
    alpha_dataset: int
    alpha_hash: str
    alpha_study: int
    beta_dataset: int
    log: Path


def _finished(client: httpx.Client, study_id: int, timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        study = client.get(f"/api/v1/studies/{study_id}").json()
        if study["status"] != "running":
            return study
        time.sleep(0.2)
    raise AssertionError(f"study {study_id} still running after {timeout_s}s")


def _upload(client: httpx.Client, content: bytes) -> dict:
    answer = client.post(
        "/api/v1/datasets", files={"file": ("t.csv", content)}, data={"target": "label"}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def _on_dataset(dataset: str, **overrides: Any) -> dict:
    return tiny_study(
        dataset={"name": dataset, "target": "label"},
        model={"type": "softmax"},
        **{"budget": {"trials": 1}, **overrides},
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("isolation")
    url = f"sqlite:///{folder / 'hpsearch.db'}"
    env = {"HPSEARCH_DATABASE_URL": url, "HPSEARCH_RATE_LIMIT_BURST": "10000"}
    with serving_api(folder, env) as api:
        make_token = token_maker(url)
        alpha = httpx.Client(
            base_url=api.base, headers=bearer(make_token("ana", "alpha")), timeout=30
        )
        beta = httpx.Client(
            base_url=api.base, headers=bearer(make_token("bob", "beta")), timeout=30
        )
        theirs = _upload(alpha, table_csv(60))
        study = alpha.post("/api/v1/studies", json=_on_dataset(str(theirs["id"]))).json()
        assert _finished(alpha, study["id"])["status"] == "complete"
        published = alpha.post(
            "/api/v1/presets", json={"study_id": study["id"], "trial_number": 0, "name": "secret"}
        )
        assert published.status_code == 201, published.text
        assert published.json()["dataset_hash"] == theirs["content_hash"]
        # Beta's own upload differs by a row, so that its hash is its own.
        ours = _upload(beta, table_csv(61))
        yield Live(
            alpha, beta, theirs["id"], theirs["content_hash"], study["id"], ours["id"], folder
        )


# --- the generator: every place in a body where a dataset reference can stand ---------------

StudyTemplate = Callable[[str], dict]

DATASET_REFERENCES: dict[str, StudyTemplate] = {
    "base config": lambda ref: _on_dataset(ref),
    "space choices": lambda ref: _on_dataset(
        "iris", space={"dataset.name": {"type": "categorical", "choices": ["iris", ref]}}
    ),
    "grid values": lambda ref: _on_dataset(
        "iris",
        strategy={"type": "grid"},
        space={"dataset.name": {"type": "categorical", "choices": ["iris"], "values": [ref]}},
    ),
    "whole-section choices": lambda ref: _on_dataset(
        "iris",
        space={"dataset": {"type": "categorical", "choices": [{"name": ref, "target": "label"}]}},
    ),
    "enqueue": lambda ref: _on_dataset(
        "iris",
        space={"dataset.name": {"type": "categorical", "choices": ["iris", ref]}},
        enqueue=[{"dataset.name": ref}],
    ),
}


def beta_studies(live: Live) -> int:
    return live.beta.get("/api/v1/studies").json()["count"]


def assert_refused_without_leaking(live: Live, answer: httpx.Response) -> None:
    assert answer.status_code in (404, 422), answer.text
    assert str(live.alpha_hash) not in answer.text
    assert not any(f"'{column}'" in answer.text for column in COLUMNS), answer.text


@pytest.mark.parametrize("where", list(DATASET_REFERENCES))
def test_another_teams_dataset_id_in_a_study_file_is_refused(live: Live, where: str) -> None:
    before = beta_studies(live)
    answer = live.beta.post(
        "/api/v1/studies", json=DATASET_REFERENCES[where](str(live.alpha_dataset))
    )
    assert_refused_without_leaking(live, answer)
    assert answer.json()["error"]["field"].endswith(("dataset.name", "]", "enqueue.0"))
    assert beta_studies(live) == before


@pytest.mark.parametrize("where", list(DATASET_REFERENCES))
def test_the_same_study_file_on_the_teams_own_dataset_is_accepted(live: Live, where: str) -> None:
    answer = live.beta.post(
        "/api/v1/studies", json=DATASET_REFERENCES[where](str(live.beta_dataset))
    )
    assert answer.status_code == 201, answer.text
    study = _finished(live.beta, answer.json()["id"])
    trials = live.beta.get(f"/api/v1/studies/{study['id']}/trials").json()["data"]
    assert all(live.alpha_hash not in json.dumps(t) for t in trials)


def test_another_teams_preset_as_warm_start_is_as_if_missing(live: Live) -> None:
    before = beta_studies(live)
    for ref in ("alpha/secret@latest", "alpha/secret@1", "alpha/none@1"):
        answer = live.beta.post(
            "/api/v1/studies", json=_on_dataset("iris", warm_start={"preset": ref})
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == {
            "code": "invalid",
            "message": f"warm_start.preset: no preset {ref} that you may see",
            "field": "warm_start.preset",
        }
    assert beta_studies(live) == before


@pytest.mark.parametrize(
    ("method", "path", "request_kwargs"),
    [
        ("post", "/api/v1/presets", {"json": {"study_id": 0, "trial_number": 0, "name": "x"}}),
        ("get", "/api/v1/presets/alpha/secret", {}),
        ("get", "/api/v1/presets/alpha/secret/1/export", {}),
        ("post", "/api/v1/studies?team=alpha", {"json": _on_dataset("iris")}),
        ("post", "/api/v1/datasets?team=alpha", {"files": {"file": ("t.csv", table_csv())}}),
        ("get", "/api/v1/studies/{study}", {}),
        ("get", "/api/v1/datasets/{dataset}", {}),
    ],
)
def test_alpha_ids_in_other_request_parts_are_as_if_missing(
    live: Live, method: str, path: str, request_kwargs: dict
) -> None:
    if "json" in request_kwargs and "study_id" in request_kwargs["json"]:
        request_kwargs = {"json": {**request_kwargs["json"], "study_id": live.alpha_study}}
    path = path.format(study=live.alpha_study, dataset=live.alpha_dataset)
    answer = live.beta.request(method, path, **request_kwargs)
    assert_refused_without_leaking(live, answer)


def test_filters_by_another_teams_name_find_nothing(live: Live) -> None:
    for path in ("/api/v1/studies?team=alpha", "/api/v1/studies?name=tiny"):
        listed = live.beta.get(path).json()["data"]
        assert all(s["id"] != live.alpha_study for s in listed)
    datasets = live.beta.get("/api/v1/datasets").json()
    assert live.alpha_hash not in json.dumps(datasets)
    presets = live.beta.get("/api/v1/presets").json()["data"]
    assert all(p["team"] != "alpha" for p in presets)


# --- input that must be a 4xx naming the field, and store nothing -----------------------------

HIDDEN = "model.hidden"
EPOCHS = "training.epochs"
OPTIMIZER = "training.optimizer"


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


BAD_STUDIES: list[tuple[str, dict, str]] = [
    ("timeout 1e300", {"budget": {"trials": 1, "timeout_s": 1e300}}, "budget.timeout_s"),
    ("random seed 2**32", {"strategy": {"type": "random", "seed": 2**32}}, "strategy.seed"),
    ("random seed -1", {"strategy": {"type": "random", "seed": -1}}, "strategy.seed"),
    ("tpe seed 2**40", {"strategy": {"type": "tpe", "seed": 2**40}}, "strategy.seed"),
    (
        "split seed 2**32",
        {"dataset": {"name": "iris", "split": {"seed": 2**32}}},
        "dataset.split.seed",
    ),
    ("training seed -1", {"training": {"seed": -1}}, "training.seed"),
    (
        "n_startup_trials 10**13",
        {"strategy": {"type": "tpe", "n_startup_trials": 10**13}},
        "strategy.n_startup_trials",
    ),
    (
        "int bound 10**30",
        {"space": {"training.batch_size": {"type": "int", "low": 1, "high": 10**30}}},
        "space.training.batch_size.high",
    ),
    ("dataset id superscript", {"dataset": {"name": "²"}}, "dataset.name"),
    ("dataset id 20 digits", {"dataset": {"name": "99999999999999999999"}}, "dataset.name"),
    (
        "unknown optimizer choice",
        {"space": {OPTIMIZER: {"type": "categorical", "choices": ["sgd", "nesterov"]}}},
        f"space.{OPTIMIZER}.choices[1]",
    ),
    (
        "unknown activation choice",
        {"space": {"model.activation": {"type": "categorical", "choices": ["swish"]}}},
        "space.model.activation.choices[0]",
    ),
    (
        "unknown initialiser choice",
        {"space": {"model.init": {"type": "categorical", "choices": ["he", "kaiming"]}}},
        "space.model.init.choices[1]",
    ),
    (
        "unknown loss choice",
        {"space": {"training.loss": {"type": "categorical", "choices": ["hinge"]}}},
        "space.training.loss.choices[0]",
    ),
    (
        "hidden not a list of positive ints",
        {"space": {HIDDEN: {"type": "categorical", "choices": [[64], [0]]}}},
        f"space.{HIDDEN}.choices[1]",
    ),
    (
        "hidden a string",
        {"space": {HIDDEN: {"type": "categorical", "choices": ["wide"]}}},
        f"space.{HIDDEN}.choices[0]",
    ),
    (
        "grid values the engine refuses",
        {
            "strategy": {"type": "grid"},
            "space": {OPTIMIZER: {"type": "categorical", "choices": ["adam"], "values": ["lion"]}},
        },
        f"space.{OPTIMIZER}.values[0]",
    ),
    (
        "enqueue outside the choices",
        {
            "space": {OPTIMIZER: {"type": "categorical", "choices": ["sgd", "adam"]}},
            "enqueue": [{OPTIMIZER: "nesterov"}],
        },
        "enqueue.0",
    ),
    (
        "learning rate bounds below zero",
        {"space": {"training.learning_rate": {"type": "float", "low": -1, "high": 1}}},
        "space.training.learning_rate.low",
    ),
    (
        "a float parameter over an int setting",
        {"space": {EPOCHS: {"type": "float", "low": 1, "high": 10}}},
        f"space.{EPOCHS}.type",
    ),
    ("epochs 10**30", {"training": {"epochs": 10**30}}, EPOCHS),
    ("batch 10**30", {"training": {"batch_size": 10**30}}, "training.batch_size"),
    (
        "patience 10**20",
        {"training": {"stopping": {"patience": 10**20}}},
        "training.stopping.patience",
    ),
    (
        "searched epochs above the limit",
        {"space": {EPOCHS: {"type": "int", "low": 1, "high": 10**6}}},
        f"space.{EPOCHS}.high",
    ),
    ("hidden [10**12]", {"model": {"type": "mlp", "hidden": [10**12]}}, f"{HIDDEN}.0"),
    ("hidden 100 layers", {"model": {"type": "mlp", "hidden": [4] * 100}}, HIDDEN),
    (
        "searched hidden too wide",
        {"space": {HIDDEN: {"type": "categorical", "choices": [[8], [10**9]]}}},
        f"space.{HIDDEN}.choices[1]",
    ),
    ("enqueue nested 500 deep", {"enqueue": [{"x": deep(500)}]}, "enqueue"),
    (
        "choices nested 500 deep",
        {"space": {HIDDEN: {"type": "categorical", "choices": deep(500)}}},
        "space",
    ),
]


@pytest.mark.parametrize(
    ("change", "field"), [c[1:] for c in BAD_STUDIES], ids=[c[0] for c in BAD_STUDIES]
)
def test_bad_input_is_422_naming_the_field_and_stores_nothing(
    live: Live, change: dict, field: str
) -> None:
    before = beta_studies(live)
    answer = live.beta.post("/api/v1/studies", json=tiny_study(**change))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field, error
    assert error["message"].startswith(field)
    assert beta_studies(live) == before


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(tiny_study(budget={"trials": 1, "timeout_s": float("inf")})),
        json.dumps(
            tiny_study(
                space={"training.learning_rate": {"type": "float", "low": float("nan"), "high": 1}}
            )
        ),
        "[" * 200_000 + "]" * 200_000,
        '{"name": ' * 5000 + "1" + "}" * 5000,
    ],
    ids=["timeout Infinity", "NaN bound", "200k nested arrays", "5000 nested objects"],
)
def test_bodies_json_cannot_carry_are_4xx_not_500(live: Live, body: str) -> None:
    before = beta_studies(live)
    answer = live.beta.post(
        "/api/v1/studies", content=body, headers={"Content-Type": "application/json"}
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert "Traceback" not in answer.text
    assert beta_studies(live) == before


def test_no_request_above_left_a_trace_in_the_servers_log(live: Live) -> None:
    log = "\n".join(p.read_text() for p in live.log.glob("*.log"))
    assert "POST /api/v1/studies" in log  # the access log of the requests above
    assert "Traceback" not in log
    assert not re.search(r"\b500\b Internal", log)
