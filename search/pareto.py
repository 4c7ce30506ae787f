"""Pareto fronts of multi-objective studies."""

from __future__ import annotations

from collections.abc import Sequence


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """Whether `a` is at least as good as `b` in every objective and better in one."""
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    at_least = all(s * x <= s * y for s, x, y in zip(signs, a, b, strict=True))
    return at_least and any(s * x < s * y for s, x, y in zip(signs, a, b, strict=True))


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the points no other point dominates, in their given order."""
    return [
        i
        for i, p in enumerate(points)
        if not any(dominates(q, p, directions) for j, q in enumerate(points) if j != i)
    ]
