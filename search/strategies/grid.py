"""Grid search over an indexable grid whose points the coordinator claims one by one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hpsearch.search.space import Space
from hpsearch.search.strategies.base import Proposal, Strategy, TrialRecord


class Grid:
    """The Cartesian product of a space's grid values over its active parameters.

    Indexable (`len(grid)`, `grid[i]`) so that a point can be claimed by its index: the
    database's unique (study, grid_index) then guarantees it runs once, with any number of
    workers.
    """

    def __init__(self, space: Space, n: int) -> None:
        self.space = space
        self.n = n

    def __len__(self) -> int:
        return self.space.grid_size(self.n)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.space.grid_point(self.n, index)


class GridStrategy(Strategy):
    """Every grid point once, in order; nothing more once the grid is exhausted."""

    def __init__(self, n: int = 5) -> None:
        self.n = n

    def ask(self, space: Space, history: Sequence[TrialRecord], n: int) -> list[Proposal]:
        grid = Grid(space, self.n)
        claimed = {t.grid_index for t in history if t.grid_index is not None}
        free = (i for i in range(len(grid)) if i not in claimed)
        return [Proposal(grid[i], grid_index=i) for _, i in zip(range(n), free, strict=False)]
