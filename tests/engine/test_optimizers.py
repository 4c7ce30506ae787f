"""Optimizer steps against DESIGN.md's update rules, worked by hand one weight at a time.

The engine updates a flat vector in place; the references below are plain-float loops over the
three weights, written from DESIGN.md and nothing else.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpsearch.worker.engine.config import ConfigError, TrainingConfig
from hpsearch.worker.engine.optimizers import (
    GD,
    NAG,
    OPTIMIZERS,
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    AdamW,
    Momentum,
    Optimizer,
    RMSProp,
    build_optimizer,
    flush_period,
    flush_subnormals,
    get_optimizer,
)

W0 = [1.0, -2.0, 0.5]
GRADS = [[0.1, -0.2, 0.3], [0.4, 0.0, -0.5], [-0.3, 0.1, 0.2]]


def run_steps(optimizer: Optimizer, n: int = 3) -> list[np.ndarray]:
    """The weights after each of the first ``n`` steps on the fixed gradient sequence."""
    params = np.array(W0)
    state = optimizer.init_state(params)
    seen = []
    for g in GRADS[:n]:
        returned, state = optimizer.step(params, np.array(g), state)
        assert returned is params  # updated in place
        seen.append(params.copy())
    return seen


def assert_steps(optimizer: Optimizer, expected: list[list[float]]) -> None:
    for t, (got, want) in enumerate(zip(run_steps(optimizer), expected, strict=True), 1):
        assert np.allclose(got, want, rtol=0, atol=1e-12), f"step {t}"


def by_hand(update) -> list[list[float]]:
    """Apply ``update(i, w_i, g_i, t, memory)`` per weight and step; memory is per weight."""
    w, memory, out = list(W0), [{} for _ in W0], []
    for t, g in enumerate(GRADS, start=1):
        w = [update(i, w[i], g[i], t, memory[i]) for i in range(3)]
        out.append(list(w))
    return out


def test_sgd_first_three_steps_follow_w_minus_eta_g() -> None:
    expected = [
        [1.0 - 0.01, -2.0 + 0.02, 0.5 - 0.03],
        [0.99 - 0.04, -1.98 - 0.0, 0.47 + 0.05],
        [0.95 + 0.03, -1.98 - 0.01, 0.52 - 0.02],
    ]
    assert_steps(SGD(learning_rate=0.1), expected)
    assert_steps(GD(learning_rate=0.1), expected)


def test_sgd_weight_decay_adds_lambda_w_to_the_gradient() -> None:
    def update(i, w, g, t, mem):
        return w - 0.1 * (g + 0.5 * w)

    assert_steps(SGD(learning_rate=0.1, weight_decay=0.5), by_hand(update))


def test_momentum_accumulates_a_then_steps_along_it() -> None:
    def update(i, w, g, t, mem):
        mem["a"] = 0.9 * mem.get("a", 0.0) + g
        return w - 0.1 * mem["a"]

    assert_steps(Momentum(learning_rate=0.1, momentum=0.9), by_hand(update))


def test_nag_takes_the_gradient_at_the_look_ahead_point() -> None:
    # L(w) = ½ Σ c_i (w_i − w*_i)², so ∇L(w)_i = c_i (w_i − w*_i), known anywhere.
    c, target, eta, beta = [1.0, 3.0, 0.5], [0.5, 0.0, -1.0], 0.1, 0.8

    def grad(point: list[float]) -> list[float]:
        return [c[i] * (point[i] - target[i]) for i in range(3)]

    w, a, expected = list(W0), [0.0] * 3, []
    for _ in range(3):
        g = grad([w[i] - eta * beta * a[i] for i in range(3)])
        a = [beta * a[i] + g[i] for i in range(3)]
        w = [w[i] - eta * a[i] for i in range(3)]
        expected.append(w)

    optimizer = NAG(learning_rate=eta, momentum=beta)
    params = np.array(W0)
    state, point = optimizer.init_state(params), np.empty(3)
    for want in expected:
        at = optimizer.lookahead(params, state, out=point)
        optimizer.step(params, np.array(grad(list(at))), state)
        assert np.allclose(params, want, rtol=0, atol=1e-12)
    assert optimizer.looks_ahead and not Momentum().looks_ahead


def test_adagrad_divides_by_the_root_of_the_summed_squares() -> None:
    def update(i, w, g, t, mem):
        mem["G"] = mem.get("G", 0.0) + g * g
        return w - 0.1 * g / (math.sqrt(mem["G"]) + 1e-8)

    assert_steps(Adagrad(learning_rate=0.1, epsilon=1e-8), by_hand(update))


def test_rmsprop_divides_by_the_root_of_the_running_average() -> None:
    def update(i, w, g, t, mem):
        mem["G"] = 0.9 * mem.get("G", 0.0) + 0.1 * g * g
        return w - 0.01 * g / (math.sqrt(mem["G"]) + 1e-6)

    assert_steps(RMSProp(learning_rate=0.01, gamma=0.9, epsilon=1e-6), by_hand(update))


def adadelta_update(eta: float, gamma: float = 0.95, eps: float = 1e-6):
    def update(i, w, g, t, mem):
        mem["G"] = gamma * mem.get("G", 0.0) + (1 - gamma) * g * g
        delta = -(math.sqrt(mem.get("H", 0.0) + eps) / math.sqrt(mem["G"] + eps)) * g
        mem["H"] = gamma * mem.get("H", 0.0) + (1 - gamma) * delta * delta
        return w + eta * delta

    return update


def test_adadelta_needs_no_learning_rate() -> None:
    training = TrainingConfig(optimizer="adadelta", learning_rate=None, gamma=0.95, epsilon=1e-6)
    optimizer = build_optimizer(training)
    assert optimizer.learning_rate == 1.0
    assert_steps(optimizer, by_hand(adadelta_update(1.0)))


def test_a_learning_rate_scales_adadeltas_step() -> None:
    optimizer = Adadelta(learning_rate=0.5, gamma=0.95, epsilon=1e-6)
    assert_steps(optimizer, by_hand(adadelta_update(0.5)))


def adam_update(lr: float, b1: float, b2: float, eps: float, l2: float = 0.0, decoupled=0.0):
    def update(i, w, g, t, mem):
        g = g + l2 * w
        mem["m"] = b1 * mem.get("m", 0.0) + (1 - b1) * g
        mem["v"] = b2 * mem.get("v", 0.0) + (1 - b2) * g * g
        m_hat, v_hat = mem["m"] / (1 - b1**t), mem["v"] / (1 - b2**t)
        return w - lr * (m_hat / (math.sqrt(v_hat) + eps) + decoupled * w)

    return update


def test_adam_first_three_steps_follow_the_design_formula() -> None:
    optimizer = Adam(learning_rate=0.01, beta1=0.8, beta2=0.99, epsilon=1e-3)
    assert_steps(optimizer, by_hand(adam_update(0.01, 0.8, 0.99, 1e-3)))


def test_adam_keeps_the_design_moments_inspectable() -> None:
    optimizer = Adam(learning_rate=0.01, beta1=0.8, beta2=0.99)
    params = np.array(W0)
    state = optimizer.init_state(params)
    for g in GRADS:
        optimizer.step(params, np.array(g), state)
    m = [0.8 * (0.8 * 0.2 * a + 0.2 * b) + 0.2 * c for a, b, c in zip(*GRADS, strict=True)]
    v = [
        0.99 * (0.99 * 0.01 * a * a + 0.01 * b * b) + 0.01 * c * c
        for a, b, c in zip(*GRADS, strict=True)
    ]
    assert state["t"] == 3
    assert np.allclose(optimizer.moments(state)[0], m, rtol=1e-12)
    assert np.allclose(optimizer.moments(state)[1], v, rtol=1e-12)


def test_adam_bias_correction_makes_the_first_step_eta_times_sign() -> None:
    # At t = 1, m̂ = g and v̂ = g², so the step is η g / (|g| + ε) ≈ η sign(g).
    (w1,) = run_steps(Adam(learning_rate=0.01), n=1)
    assert np.allclose(np.array(W0) - w1, [0.01, -0.01, 0.01], rtol=1e-6)


@pytest.mark.parametrize(("dtype", "tolerance"), [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize(("l2", "decoupled"), [(0.0, 0.0), (0.1, 0.0), (0.0, 0.1)])
def test_adam_on_a_long_vector_follows_the_formula_for_60_steps(
    dtype: type, tolerance: float, l2: float, decoupled: float
) -> None:
    # 1,003 weights: Adam's compiled loop runs its vector body, not only the scalar tail that
    # three weights reach. β2 = 0.5 keeps the bias correction changing over the 60 steps.
    rng = np.random.default_rng(0)
    w0, grads = rng.normal(size=1003), rng.normal(size=(60, 1003))
    kind = AdamW if decoupled else Adam
    optimizer = kind(learning_rate=0.01, weight_decay=l2 or decoupled, beta1=0.8, beta2=0.5)
    params = w0.astype(dtype)
    state = optimizer.init_state(params)
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads, start=1):
        optimizer.step(params, g.astype(dtype), state)
        g = g + l2 * w
        m, v = 0.8 * m + 0.2 * g, 0.5 * v + 0.5 * g * g
        m_hat, v_hat = m / (1 - 0.8**t), v / (1 - 0.5**t)
        w = w - 0.01 * (m_hat / (np.sqrt(v_hat) + 1e-8) + decoupled * w)
    assert params.dtype == dtype
    assert np.allclose(params, w, rtol=tolerance, atol=tolerance)
    assert np.allclose(optimizer.moments(state)[1], v, rtol=tolerance, atol=tolerance)


def test_adam_refuses_parameters_it_cannot_update_in_place() -> None:
    params = np.zeros(6)[::2]
    optimizer = Adam()
    with pytest.raises(ValueError, match="in place"):
        optimizer.step(params, np.ones(3), optimizer.init_state(params))


def test_adam_weight_decay_is_l2_in_the_gradient() -> None:
    optimizer = Adam(learning_rate=0.01, weight_decay=0.1)
    assert_steps(optimizer, by_hand(adam_update(0.01, 0.9, 0.999, 1e-8, l2=0.1)))


def test_adamw_decays_the_weights_apart_from_the_moments() -> None:
    optimizer = AdamW(learning_rate=0.01, weight_decay=0.1)
    expected = by_hand(adam_update(0.01, 0.9, 0.999, 1e-8, decoupled=0.1))
    assert_steps(optimizer, expected)
    coupled = run_steps(Adam(learning_rate=0.01, weight_decay=0.1))
    assert not np.allclose(coupled[-1], expected[-1], rtol=0, atol=1e-6)


def test_adamw_without_decay_is_adam() -> None:
    assert np.array_equal(run_steps(AdamW(0.01))[-1], run_steps(Adam(0.01))[-1])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_descends_a_quadratic_in_float32(name: str) -> None:
    # L(w) = ½‖w − 1‖²: every rule must bring w closer to 1 in 200 steps.
    # Adadelta's steps grow from √ε: a large ε gets it moving within the 200 steps.
    settings = {"learning_rate": 1.0, "epsilon": 1e-2} if name == "adadelta" else {}
    optimizer = get_optimizer(name)(**{"learning_rate": 0.05, **settings})
    w = np.zeros(5, np.float32)
    state = optimizer.init_state(w)
    point = np.empty_like(w)
    for _ in range(200):
        at = optimizer.lookahead(w, state, out=point)
        optimizer.step(w, (at - 1).astype(np.float32), state)
    assert w.dtype == np.float32
    assert np.linalg.norm(w - 1) < 0.5 * np.linalg.norm(np.ones(5)), name


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: SGD(learning_rate=0.0), "training.learning_rate"),
        (lambda: SGD(learning_rate=-1.0), "training.learning_rate"),
        (lambda: SGD(learning_rate=float("nan")), "training.learning_rate"),
        (lambda: Adam(learning_rate=float("inf")), "training.learning_rate"),
        (lambda: SGD(weight_decay=-0.1), "training.weight_decay"),
        (lambda: Momentum(momentum=1.0), "training.momentum"),
        (lambda: NAG(momentum=-0.5), "training.momentum"),
        (lambda: Adagrad(epsilon=-1e-8), "training.epsilon"),
        (lambda: RMSProp(gamma=1.5), "training.gamma"),
        (lambda: Adadelta(epsilon=0.0), "training.epsilon"),
        (lambda: Adam(beta1=1.0), "training.beta1"),
        (lambda: Adam(beta2=-0.1), "training.beta2"),
        (lambda: AdamW(epsilon=0.0), "training.epsilon"),
    ],
)
def test_constructor_errors_name_the_field(make, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make()
    assert caught.value.field == field


def test_unknown_optimizer_names_the_field_and_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        get_optimizer("lion")
    assert caught.value.field == "training.optimizer"
    assert "adamw" in caught.value.reason


def test_a_null_learning_rate_is_refused_where_one_is_needed() -> None:
    with pytest.raises(ConfigError) as caught:
        build_optimizer(TrainingConfig(optimizer="sgd", learning_rate=None))
    assert caught.value.field == "training.learning_rate"


@pytest.mark.parametrize(
    ("name", "cls", "full_batch"),
    [
        ("gd", GD, True),
        ("sgd", SGD, False),
        ("minibatch", SGD, False),
        ("momentum", Momentum, False),
        ("nag", NAG, False),
        ("adagrad", Adagrad, False),
        ("adadelta", Adadelta, False),
        ("rmsprop", RMSProp, False),
        ("adam", Adam, False),
        ("adamw", AdamW, False),
    ],
)
def test_registry_builds_the_named_optimizer(name: str, cls: type, full_batch: bool) -> None:
    training = TrainingConfig(
        optimizer=name, learning_rate=0.5, weight_decay=0.01, momentum=0.7, beta1=0.8, gamma=0.6
    )
    optimizer = build_optimizer(training)
    assert type(optimizer) is cls
    assert optimizer.full_batch is full_batch
    assert optimizer.learning_rate == 0.5 and optimizer.weight_decay == 0.01
    for field, value in (("momentum", 0.7), ("beta1", 0.8), ("gamma", 0.6)):
        if field in cls.hyperparameters:
            assert getattr(optimizer, field) == value


def test_flush_zeroes_subnormals_and_nothing_else() -> None:
    tiny = np.finfo(np.float32).tiny
    array = np.array([tiny / 4, -tiny / 1e3, 1e-40, 1e-33, 1e-30, -1e-3, 0.0, 1.0], np.float32)
    flush_subnormals(array)
    assert np.array_equal(array[:4], np.zeros(4, np.float32))
    assert np.array_equal(array[4:], np.array([1e-30, -1e-3, 0.0, 1.0], np.float32))


@pytest.mark.parametrize("beta", [0.5, 0.9, 0.99, 0.999])
def test_flush_period_keeps_decaying_state_out_of_the_subnormal_range(beta: float) -> None:
    # Anything above the threshold after a flush is still normal at the next one.
    period = flush_period(beta)
    threshold = 2.0**20 * np.finfo(np.float32).tiny
    value = np.float32(threshold * 1.0001)
    for _ in range(period):
        value = np.float32(value * np.float32(beta))
    assert value >= np.finfo(np.float32).tiny
    assert flush_period(0.0) == flush_period(1.0) == 1024
