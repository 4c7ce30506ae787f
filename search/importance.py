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
MIN_TRIALS = 2
# PED-ANOVA contrasts the best trials with all: it wants about 5 trials among the best
# (Optuna's note), so with few trials the "best" fraction grows from 10% up to a half.
TOP_TRIALS = 5


def param_importances(
    space: Space, trials: Sequence[TrialRecord], direction: str, *, limit: int = MAX_TRIALS
) -> dict[str, Any]:
    """Each searched parameter's share (summing to 1) in the first objective, by PED-ANOVA.

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
    study = optuna.create_study(direction=direction)
    study.add_trials([t for t in (_frozen(space, r) for r in usable) if t is not None])
    used = len(study.trials)
    if used < MIN_TRIALS:
        return _answer({}, used, f"importances need at least {MIN_TRIALS} complete trials")
    quantile = min(0.5, max(0.1, TOP_TRIALS / used))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few trials in a regime, equal quantiles: both fine
        shares = get_param_importances(
            study, evaluator=PedAnovaImportanceEvaluator(target_quantile=quantile)
        )
    return _answer({name: float(share) for name, share in shares.items()}, used, None)


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
