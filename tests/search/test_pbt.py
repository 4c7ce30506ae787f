"""Population-based training's plan, as pure functions of the seed and the results so far."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from hpsearch.search.definition import EPOCHS_KEY as EPOCHS
from hpsearch.search.space import Param, Space
from hpsearch.search.strategies.base import Proposal, TrialRecord
from hpsearch.search.strategies.pbt import PBTStrategy

PARAM = TypeAdapter(Param)
SPACE = Space(
    {
        "lr": PARAM.validate_python({"type": "float", "low": 1e-4, "high": 1.0, "log": True}),
        "batch": PARAM.validate_python({"type": "int", "low": 8, "high": 256}),
        "optimizer": PARAM.validate_python({"type": "categorical", "choices": ["sgd", "adam"]}),
    }
)
POPULATION, INTERVAL, EPOCHS_IN_ALL = 8, 5, 15


def strategy(**overrides: Any) -> PBTStrategy:
    options = {
        "seed": 3,
        "epochs_key": EPOCHS,
        "population": POPULATION,
        "interval": INTERVAL,
        "epochs": EPOCHS_IN_ALL,
        "quantile": 0.25,
        "resample_probability": 0.0,
        "direction": "maximize",
    } | overrides
    return PBTStrategy(**options)


def ran(history: list[TrialRecord], proposals: list[Proposal], values: list[float | None]) -> None:
    """Append the proposals to `history` as finished trials with these values."""
    for proposal, value in zip(proposals, values, strict=True):
        state = "complete" if value is not None else "failed"
        history.append(
            TrialRecord(
                len(history),
                proposal.params,
                state,
                values=None if value is None else (value,),
                lineage=proposal.lineage,
            )
        )


def test_the_first_generation_is_the_population_drawn_at_random() -> None:
    first = strategy().ask(SPACE, [], 100)
    assert [p.lineage["member"] for p in first] == list(range(POPULATION))  # type: ignore[index]
    assert all(p.lineage["parent"] is None for p in first)  # type: ignore[index]
    assert all(p.params[EPOCHS] == INTERVAL for p in first)
    assert len({p.params["lr"] for p in first}) == POPULATION
    assert all(SPACE.contains({k: v for k, v in p.params.items() if k != EPOCHS}) for p in first)


def test_a_generation_waits_for_every_member_of_the_one_before() -> None:
    pbt, history = strategy(), []
    first = pbt.ask(SPACE, history, 100)
    ran(history, first[:-1], [0.5] * (POPULATION - 1))
    history.append(
        TrialRecord(len(history), first[-1].params, "running", lineage=first[-1].lineage)
    )
    assert pbt.ask(SPACE, history, 100) == []


def test_the_bottom_copies_the_top_and_varies_its_settings_and_the_rest_go_on() -> None:
    pbt, history = strategy(), []
    first = pbt.ask(SPACE, history, 100)
    values = [0.1 * member for member in range(POPULATION)]  # member 7 best, member 0 worst
    ran(history, first, values)
    second = pbt.ask(SPACE, history, 100)
    assert [p.lineage["member"] for p in second] == list(range(POPULATION))  # type: ignore[index]
    assert all(p.params[EPOCHS] == 2 * INTERVAL for p in second)
    for proposal in second:
        lineage = proposal.lineage
        assert lineage is not None and lineage["generation"] == 1
        member = lineage["member"]
        if member in (0, 1):  # the bottom quarter: copies one of the top quarter, 6 and 7
            assert lineage["copied"] in (6, 7)
            assert lineage["parent"] == history[lineage["copied"]].number
            source = history[lineage["copied"]].params
            assert proposal.params["optimizer"] == source["optimizer"]  # only resampled changes
            assert proposal.params["lr"] / source["lr"] in (
                pytest.approx(0.8),
                pytest.approx(1.2),
            ) or proposal.params["lr"] in (1e-4, 1.0)
            assert lineage["changed"]["lr"] == [source["lr"], proposal.params["lr"]]
        else:  # goes on from its own state, settings unchanged
            assert lineage["parent"] == history[member].number and "copied" not in lineage
            assert {k: v for k, v in proposal.params.items() if k != EPOCHS} == {
                k: v for k, v in history[member].params.items() if k != EPOCHS
            }


def test_minimizing_copies_from_the_lowest_values() -> None:
    pbt, history = strategy(direction="minimize"), []
    first = pbt.ask(SPACE, history, 100)
    ran(history, first, [0.1 * member for member in range(POPULATION)])  # member 0 best
    copies = {p.lineage["member"]: p.lineage.get("copied") for p in pbt.ask(SPACE, history, 100)}  # type: ignore[index,union-attr]
    assert {m for m, source in copies.items() if source is not None} == {6, 7}
    assert {copies[6], copies[7]} <= {0, 1}


def test_a_failed_member_copies_even_outside_the_bottom() -> None:
    pbt, history = strategy(), []
    first = pbt.ask(SPACE, history, 100)
    values: list[float | None] = [0.1 * member for member in range(POPULATION)]
    values[4] = None  # diverged
    ran(history, first, values)
    second = {p.lineage["member"]: p.lineage for p in pbt.ask(SPACE, history, 100)}  # type: ignore[index]
    assert second[4]["copied"] in (6, 7)


def test_resampling_draws_settings_again_within_the_space() -> None:
    pbt, history = strategy(resample_probability=1.0), []
    first = pbt.ask(SPACE, history, 100)
    ran(history, first, [0.1 * member for member in range(POPULATION)])
    for proposal in pbt.ask(SPACE, history, 100):
        params = {k: v for k, v in proposal.params.items() if k != EPOCHS}
        assert SPACE.contains(params)


def test_a_plan_asked_in_pieces_is_the_plan_asked_at_once() -> None:
    pbt, history = strategy(), []
    first = pbt.ask(SPACE, history, 100)
    ran(history, first, [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4])
    whole = pbt.ask(SPACE, history, 100)
    pieces: list[Proposal] = []
    queued = list(history)
    while len(pieces) < POPULATION:
        asked = pbt.ask(SPACE, queued, 3)
        pieces += asked
        queued += [
            TrialRecord(len(queued) + i, p.params, "queued", lineage=p.lineage)
            for i, p in enumerate(asked)
        ]
    assert pieces == whole


def test_a_lost_trials_retry_stands_for_it_and_the_study_ends_after_the_last_generation() -> None:
    pbt, history = strategy(), []
    for generation in range(3):
        planned = pbt.ask(SPACE, history, 100)
        assert len(planned) == POPULATION
        assert all(p.params[EPOCHS] == (generation + 1) * INTERVAL for p in planned)
        lost, rest = planned[0], planned[1:]
        # Member 0's trial is lost, and its retry (same lineage) runs later.
        history.append(
            TrialRecord(len(history), lost.params, "failed", interrupted=True, lineage=lost.lineage)
        )
        ran(history, rest, [0.5] * (POPULATION - 1))
        history.append(TrialRecord(len(history), lost.params, "running", lineage=lost.lineage))
        assert pbt.ask(SPACE, history, 100) == []  # the retry is part of the generation
        history[-1] = TrialRecord(
            history[-1].number, lost.params, "complete", values=(0.6,), lineage=lost.lineage
        )
    assert pbt.ask(SPACE, history, 100) == []  # 15 epochs in intervals of 5: three generations
    shown = pbt.describe(SPACE, history)
    assert len(shown["generations"]) == 3
    assert [entry["member"] for entry in shown["generations"][2]] == list(range(POPULATION))
