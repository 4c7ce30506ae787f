"""What the strategies' tests share: a space from plain dicts, and trials run in batches."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import TypeAdapter

from hpsearch.search.space import Param, Space
from hpsearch.search.strategies.base import Strategy, TrialRecord

PARAM = TypeAdapter(Param)


def space_of(params: dict) -> Space:
    """A space from the study file's form of its parameters."""
    return Space({name: PARAM.validate_python(p) for name, p in params.items()})


def run_batches(
    strategy: Strategy,
    trials: int,
    per_ask: int,
    objective: Callable[[dict], float],
    space: Space,
) -> list[TrialRecord]:
    """Ask for up to `per_ask` proposals, run them all at once with `objective`, repeat until
    `trials` or the strategy has no more."""
    history: list[TrialRecord] = []
    while len(history) < trials:
        proposals = strategy.ask(space, history, min(per_ask, trials - len(history)))
        if not proposals:
            break
        history += [
            TrialRecord(
                number=len(history) + i,
                params=p.params,
                state="complete",
                values=(objective(p.params),),
                grid_index=p.grid_index,
            )
            for i, p in enumerate(proposals)
        ]
    return history
