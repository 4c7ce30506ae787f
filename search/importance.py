"""Which parameters mattered: Optuna's importance evaluator on a study's complete trials.

Pure like the strategies: a space and trial records in, plain data out. The trials are copied
into an in-memory Optuna study through `optuna.trial.create_trial`, with the distributions the
Optuna samplers use (`hpsearch.search.strategies.optuna_samplers.distribution`), and each
trial carries only its active parameters: a conditional parameter is absent where its condition
failed, which is how Optuna represents a conditional search space.

The evaluator is Optuna's `PedAnovaImportanceEvaluator` (PED-ANOVA, Watanabe et al. 2023, with
Optuna 5's conditional extension): it needs only NumPy, whereas `FanovaImportanceEvaluator`
needs scikit-learn, which hpsearch does not install; it is Optuna's default evaluator since 5.0,
is fast (Parzen estimators on a 50-point grid per parameter, no random forest), and it handles
conditional parameters by splitting trials into regimes where the parameter is active or not,
while fANOVA only scores the parameters every trial has. It answers "which parameters set the
best trials apart from the rest": the top `target_quantile` of trials against all of them.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

from hpsearch.search.space import Space
from hpsearch.search.strategies.base import TrialRecord
from hpsearch.search.strategies.optuna_samplers import distribution, encode

EVALUATOR = "ped-anova"
# The latest trials used, at most: PED-ANOVA is linear in the trials, but building 10,000
# FrozenTrials on every new result would make a dashboard poll slow; the latest 1000 also say
# what matters where the search is now, not where it began.
MAX_TRIALS = 1000
# Below this many complete trials (and, for a conditional parameter, trials where it is
# active) a ranking of the parameters is noise drawn as a chart: none is given.
MIN_TRIALS = 10
# PED-ANOVA contrasts the best trials with all: it wants about 5 trials among the best
# (Optuna's note), so with few trials the "best" fraction grows from 10% up to a half.
TOP_TRIALS = 5


def param_importances(
    space: Space, trials: Sequence[TrialRecord], direction: str, *, limit: int = MAX_TRIALS
) -> dict[str, Any]:
    """Each searched parameter's share (summing to 1) in the first objective, by PED-ANOVA.

    Trials are compared only with trials of the same fidelity (coarse_to_fine's coarse rounds
    train fewer epochs, which they carry in their params): those of the most epochs that
    number at least `MIN_TRIALS`. A conditional parameter's importance is computed over the
    trials where it is active only, and weighted by the share of trials where it is: it can
    matter nowhere else. The unconditional parameters' are computed over every trial.

    Answers ``{"importances": {name: share, ...} (largest first), "trials_used": n,
    "evaluator": "ped-anova", "reason": None or why there are no importances}``.

    Example::

        space = Space({"x": FloatParam(type="float", low=0, high=1),
                       "y": FloatParam(type="float", low=0, high=1)})
        param_importances(space, history, "minimize")["importances"]  # {"x": 0.97, "y": 0.03}
    """
    usable = [t for t in trials if t.state == "complete" and _finite(t.value)][-limit:]
    if len(space.params) < 2:
        return _answer({}, len(usable), "only one parameter is searched: nothing to compare")
    frozen = [t for t in (_frozen(space, r) for r in _one_fidelity(space, usable)) if t]
    if len(frozen) < MIN_TRIALS:
        reason = f"importances need at least {MIN_TRIALS} complete trials of the same epochs"
        return _answer({}, len(frozen), reason)
    always = [name for name, p in space.params.items() if not p.when]
    shares = _shares(frozen, direction, always) if len(always) > 1 else dict.fromkeys(always, 1.0)
    for name, param in space.params.items():
        active = [t for t in frozen if name in t.params]
        if param.when and len(active) >= MIN_TRIALS:
            within = _shares(active, direction, [*always, name])[name]
            shares[name] = within * len(active) / len(frozen)
    total = sum(shares.values()) or 1.0
    ranked = sorted(shares.items(), key=lambda item: -item[1])
    return _answer({name: share / total for name, share in ranked}, len(frozen), None)


def _shares(
    trials: list[optuna.trial.FrozenTrial], direction: str, params: list[str]
) -> dict[str, float]:
    """PED-ANOVA's shares of `params` over `trials`."""
    study = optuna.create_study(direction=direction)
    study.add_trials(trials)
    quantile = min(0.5, max(0.1, TOP_TRIALS / len(trials)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few trials in a regime, equal quantiles: both fine
        shares = get_param_importances(
            study,
            evaluator=PedAnovaImportanceEvaluator(target_quantile=quantile),
            params=params,
        )
    return {name: float(share) for name, share in shares.items()}


def _one_fidelity(space: Space, trials: list[TrialRecord]) -> list[TrialRecord]:
    """The trials of one fidelity: those whose settings outside the space (a coarse round's
    reduced epochs) are the same, the full ones (no such setting) first, else the most
    epochs, among groups of at least `MIN_TRIALS`; the largest group if none is that big."""
    groups: dict[str, list[TrialRecord]] = {}
    for trial in trials:
        extra = {k: v for k, v in trial.params.items() if k not in space.params}
        groups.setdefault(json.dumps(extra, sort_keys=True), []).append(trial)
    if not groups:
        return []

    def fidelity(key: str) -> tuple[bool, bool, list[float]]:
        extra = json.loads(key)
        numbers = [float(v) for v in extra.values() if isinstance(v, int | float)]
        return (len(groups[key]) >= MIN_TRIALS, not extra, numbers)

    return groups[max(groups, key=fidelity)]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _frozen(space: Space, trial: TrialRecord) -> optuna.trial.FrozenTrial | None:
    """`trial` as Optuna's, or None if a value lies outside its distribution (a space edited
    by hand in the database, say): one odd trial must not cost the whole answer."""
    params = {name: v for name, v in trial.params.items() if name in space.params}
    try:
        return optuna.trial.create_trial(
            params=encode(space, params),
            distributions={name: distribution(space.params[name]) for name in params},
            value=trial.value,
        )
    except ValueError:
        return None


def _answer(importances: dict[str, float], used: int, reason: str | None) -> dict[str, Any]:
    return {
        "importances": importances,
        "trials_used": used,
        "evaluator": EVALUATOR,
        "reason": reason,
    }
