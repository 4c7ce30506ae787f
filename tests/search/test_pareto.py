from __future__ import annotations

import itertools

import numpy as np

from hpsearch.search.pareto import dominates, pareto_front


def test_dominance_follows_each_direction() -> None:
    assert dominates((0.9, 1.0), (0.8, 1.0), ["maximize", "minimize"])
    assert not dominates((0.9, 2.0), (0.8, 1.0), ["maximize", "minimize"])
    assert not dominates((0.9, 1.0), (0.9, 1.0), ["maximize", "minimize"])


def test_front_is_exactly_the_non_dominated_points() -> None:
    rng = np.random.default_rng(0)
    points = [tuple(p) for p in rng.random((60, 2))]
    directions = ["maximize", "minimize"]
    front = set(pareto_front(points, directions))
    for i, p in enumerate(points):
        # brute force, written out: p is on the front iff nothing is >= in x, <= in y, and !=
        beaten = any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points)
        assert (i in front) == (not beaten)
    for i, j in itertools.combinations(front, 2):
        assert not dominates(points[i], points[j], directions)
