from __future__ import annotations

import math

import pytest
from pydantic import TypeAdapter, ValidationError

from hpsearch.search.space import Param, Space

PARAM = TypeAdapter(Param)


def space(**params: dict) -> Space:
    return Space({name: PARAM.validate_python(p) for name, p in params.items()})


@pytest.mark.parametrize(
    ("param", "reason"),
    [
        ({"type": "float", "low": 1.0, "high": 1.0}, "less than high"),
        ({"type": "float", "low": 2.0, "high": 1.0}, "less than high"),
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "low > 0"),
        ({"type": "int", "low": -1, "high": 4, "log": True}, "low > 0"),
        ({"type": "categorical", "choices": []}, "at least 1"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(param: dict, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        PARAM.validate_python(param)


def test_when_on_an_unknown_parameter_names_both() -> None:
    with pytest.raises(ValueError, match="b: 'when' refers to 'missing'"):
        space(b={"type": "float", "low": 0, "high": 1, "when": {"missing": [1]}})


def test_conditions_are_ordered_after_their_parents_whatever_the_file_order() -> None:
    s = space(
        momentum={"type": "float", "low": 0.5, "high": 0.9, "when": {"opt": ["momentum"]}},
        opt={"type": "categorical", "choices": ["sgd", "momentum"]},
    )
    assert list(s.params) == ["opt", "momentum"]


def test_grid_skips_inactive_parameters() -> None:
    s = space(
        opt={"type": "categorical", "choices": ["sgd", "momentum"]},
        momentum={"type": "float", "low": 0.5, "high": 0.9, "when": {"opt": ["momentum"]}},
    )
    points = list(s.grid(3))
    # sgd alone, then momentum with each of its 3 values: 4 points, not 2 x 3.
    assert points == [
        {"opt": "sgd"},
        {"opt": "momentum", "momentum": 0.5},
        {"opt": "momentum", "momentum": pytest.approx(0.7)},
        {"opt": "momentum", "momentum": 0.9},
    ]
    assert all(s.contains(p) for p in points)


def test_log_grid_is_evenly_spaced_in_log() -> None:
    values = space(lr={"type": "float", "low": 1e-4, "high": 1.0, "log": True}).params["lr"].grid(5)
    assert [math.log10(v) for v in values] == pytest.approx([-4, -3, -2, -1, 0])


def test_int_grid_is_distinct_integers_within_bounds() -> None:
    values = space(b={"type": "int", "low": 16, "high": 256, "log": True}).params["b"].grid(5)
    assert values == [16, 32, 64, 128, 256]


def test_contains_rejects_inactive_values_and_out_of_range() -> None:
    s = space(
        opt={"type": "categorical", "choices": ["sgd", "momentum"]},
        momentum={"type": "float", "low": 0.5, "high": 0.9, "when": {"opt": ["momentum"]}},
    )
    assert not s.contains({"opt": "sgd", "momentum": 0.6})
    assert not s.contains({"opt": "momentum", "momentum": 0.95})
    assert not s.contains({"opt": "momentum"})
    assert s.contains({"opt": "momentum", "momentum": 0.6})


def _listed_grid(s: Space, n: int) -> list[dict]:
    """The grid as the plain depth-first product over the active parameters, for reference."""

    def expand(names: list[str], assigned: dict) -> list[dict]:
        if not names:
            return [dict(assigned)]
        name, rest = names[0], names[1:]
        if not s.is_active(name, assigned):
            return expand(rest, assigned)
        return [p for v in s.params[name].grid(n) for p in expand(rest, {**assigned, name: v})]

    return expand(list(s.params), {})


def test_grid_points_by_index_match_the_listed_product_under_conditions() -> None:
    s = space(
        opt={"type": "categorical", "choices": ["sgd", "momentum", "nag"]},
        momentum={"type": "float", "low": 0.5, "high": 0.9, "when": {"opt": ["momentum", "nag"]}},
        nesterov_extra={"type": "int", "low": 1, "high": 4, "when": {"opt": ["nag"]}},
        hidden={"type": "categorical", "choices": [[32], [64, 64], None]},
        lr={"type": "float", "low": 1e-3, "high": 1.0, "log": True},
    )
    listed = _listed_grid(s, 3)
    assert s.grid_size(3) == len(listed) == (1 + 3 + 3 * 3) * 3 * 3
    assert [s.grid_point(3, i) for i in range(len(listed))] == listed
    with pytest.raises(IndexError):
        s.grid_point(3, len(listed))


def test_a_million_point_grid_is_indexed_without_being_listed() -> None:
    import tracemalloc

    s = space(**{f"p{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(6)})
    tracemalloc.start()
    size = s.grid_size(10)
    last = s.grid_point(10, size - 1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert size == 10**6
    assert last == {f"p{i}": 1.0 for i in range(6)}
    # Listing it would take hundreds of MiB (the issue saw 221 MiB per refill).
    assert peak < 2**20


def test_a_fine_float_step_is_thinned_without_listing_every_step() -> None:
    values = space(x={"type": "float", "low": 0.0, "high": 1.0, "step": 1e-12}).params["x"].grid(5)
    assert values == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


@pytest.mark.parametrize(
    "param",
    [
        {"type": "float", "low": float("nan"), "high": 1.0},
        {"type": "float", "low": 0.0, "high": float("inf")},
        {"type": "int", "low": 0, "high": 10**30},
        {"type": "float", "low": -1e300, "high": 1.0},
        {"type": "float", "low": 0.0, "high": 1.0, "values": [float("inf")]},
        {"type": "int", "low": 0, "high": 4, "values": [2**60]},
    ],
)
def test_bounds_and_values_are_finite_and_within_json_precision(param: dict) -> None:
    with pytest.raises(ValidationError):
        PARAM.validate_python(param)


@pytest.mark.parametrize(
    ("config", "mismatch"),
    [
        ({"opt": "adam", "batch": 16}, ("opt", "'adam' is not one of the choices")),
        ({"opt": "sgd", "batch": 16.5}, ("batch", "16.5 is not an integer")),
        ({"opt": "sgd", "batch": 12}, ("batch", "12 is not on the step 8 from 8")),
        ({"opt": "sgd", "batch": 72}, ("batch", "72 is not within [8, 64]")),
        ({"opt": "sgd", "batch": True}, ("batch", "True is not a number")),
        ({"opt": "sgd", "batch": 16, "lr": 0.1}, ("lr", "is inactive here")),
        ({"opt": "momentum", "batch": 16}, ("lr", "is missing")),
        ({"opt": "sgd", "batch": 16, "x": 1}, ("x", "is not a parameter of the space")),
    ],
)
def test_mismatch_names_the_parameter_and_why_a_config_is_not_a_point(
    config: dict, mismatch: tuple[str, str]
) -> None:
    s = space(
        opt={"type": "categorical", "choices": ["sgd", "momentum"]},
        batch={"type": "int", "low": 8, "high": 64, "step": 8},
        lr={"type": "float", "low": 0.1, "high": 0.9, "when": {"opt": ["momentum"]}},
    )
    found = s.mismatch(config)
    assert found is not None and found[0] == mismatch[0] and found[1].startswith(mismatch[1])
    assert not s.contains(config)
    assert s.mismatch({"opt": "sgd", "batch": 16.0}) is None  # a whole float is an integer
