"""Optuna's samplers behind our `Strategy`, through ask-and-tell on an in-memory study.

Our SQL stays the one source of truth: the in-memory study is a warm cache of it, kept for as
long as the strategy object lives, and told every finished trial it has not seen yet (trials
this object proposed are told through `study.tell`; those proposed elsewhere, e.g. by another
worker's coordinator or before a restart, are added with `study.add_trial`).

What each sampler handles (Optuna falls back to independent random sampling for the rest), and
how a trial whose config failed is told to it (`OptunaStrategy.failure`):

=========  ===========  ============  ==========  ================  =========================
sampler    categorical  conditional   multi-obj.  a failed config   notes
=========  ===========  ============  ==========  ================  =========================
tpe        yes          yes (group)   yes         ranked last       constant liar in parallel
gp         yes          independent   yes         worst value       ``gp`` extra (torch)
cmaes      independent  independent   no          worst value       numeric parameters only
nsga2      yes          independent   yes         worst value       genetic, by generations
qmc        independent  independent   yes         (learns nothing)  scrambled Sobol points
=========  ===========  ============  ==========  ================  =========================
"""

from __future__ import annotations

import json
import secrets
import warnings
import zlib
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.trial import TrialState

from hpsearch.search.space import CategoricalParam, FloatParam, ParamSpec, Space
from hpsearch.search.strategies.base import Proposal, Strategy, TrialRecord
from hpsearch.search.strategies.random import latin_hypercube_row

optuna.logging.set_verbosity(optuna.logging.WARNING)

SAMPLER_KINDS = ("tpe", "gp", "cmaes", "nsga2", "qmc")
# The samplers whose start-up trials are a Latin hypercube (`OptunaStrategy`): on bench/search.py
# they then reached random's mark sooner on all three tasks, tpe by 0.8 / 2.5 / 1.0 trials (80
# seeds), gp by 4.3 / 3.2 / 4.2 (40 seeds).
SPACE_FILLING = ("tpe", "gp")
_STATES = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}


def make_sampler(
    kind: str,
    *,
    seed: int,
    n_startup_trials: int,
    population_size: int,
    conditional: bool = False,
) -> optuna.samplers.BaseSampler:
    """The Optuna sampler a study file's ``strategy.type`` names; `conditional` says whether
    the space has ``when`` parameters (TPE then models each group of co-occurring ones)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if kind == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=n_startup_trials,
                multivariate=True,
                # Grouping rescans every trial's parameters at each ask: only worth it when
                # conditions make parameters come and go.
                group=conditional,
                constant_liar=True,
                # Optuna's other defaults kept: at 60 trials, 80 seeds of bench/search.py,
                # 5 start-up trials, gamma 0.2 or 64 EI candidates did no better. Wine's gap
                # to Optuna's own TPESampler on seeds 100-119 (34.9 against 28.9 trials to the
                # mark) is the seeds' noise: on seeds 0-19 this sampler took 27.4 [19.4, 35.4]
                # trials, Optuna's 31.4 [23.4, 40.3]; independent (not multivariate) 28.9, no
                # Latin hypercube start 41.9, neither 25.9, unseeded per trial 28.8,
                # n_startup_trials 5 / 7 / 20: 28.1 / 34.1 / 33.4, prior_weight 0.5 25.2,
                # consider_endpoints 35.6: all inside one another's intervals. Wine's trials
                # never fail, so how failures are told plays no part there. Digits, seeds
                # 0-19: 19.9 [13.3, 27.9], Optuna's 29.1 [23.9, 34.2], n_startup_trials 5 26.4.
            )
        if kind == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials)
        if kind == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if kind == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=population_size)
        if kind == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(f"strategy.type: unknown sampler {kind!r}; one of {', '.join(SAMPLER_KINDS)}")


def distribution(param: ParamSpec) -> BaseDistribution:
    """Optuna's distribution for one of our parameters (categoricals as JSON strings, so that
    choices may be lists or mappings, which Optuna's categoricals refuse)."""
    if isinstance(param, CategoricalParam):
        return CategoricalDistribution([json.dumps(c) for c in param.choices])
    if isinstance(param, FloatParam):
        return FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    return IntDistribution(param.low, param.high, log=param.log, step=param.step)


class OptunaStrategy(Strategy):
    """One of Optuna's samplers on a warm in-memory study of this study's trials.

    With a seed, the sampler's random states are seeded afresh for each trial number from
    (seed, number). A study's trials are asked for by several processes (the API, then every
    worker that ends a trial), each with a sampler of its own: seeded once, each would replay
    the same random draws and propose the configs already proposed elsewhere.

    The first `space_filling` trials are the rows of one Latin hypercube over the space (as
    coarse_to_fine's first round), handed to the sampler as fixed parameters: TPE's and GP's
    own start-up draws are independent, and a few of them often leave whole ranges unseen.
    """

    def __init__(
        self,
        sampler: optuna.samplers.BaseSampler,
        directions: Sequence[str],
        seed: int | None = None,
        space_filling: int = 0,
    ) -> None:
        self.study = optuna.create_study(directions=list(directions), sampler=sampler)
        self.seed = seed
        self.space_filling = space_filling
        # Seeded, every process that asks for some of a study's first trials draws its rows of
        # one hypercube; unseeded, each draws from a hypercube of its own, as from a random start.
        self.hypercube_seed = seed if seed is not None else secrets.randbits(32)
        self.pending: dict[int, optuna.trial.Trial] = {}
        self.told: set[int] = set()

    def ask(self, space: Space, history: Sequence[TrialRecord], n: int) -> list[Proposal]:
        for trial in history:
            if trial.state in _STATES and trial.number not in self.told:
                self.tell(space, trial)
        proposals = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for number in range(len(history), len(history) + n):
                if self.seed is not None:
                    _reseed(self.study.sampler, f"{self.seed}:{number}")
                if number < self.space_filling:
                    self.study.enqueue_trial(encode(space, self._hypercube_row(space, number)))
                asked = self.study.ask()
                self.pending[number] = asked
                proposals.append(Proposal(suggest(asked, space)))
        return proposals

    def _hypercube_row(self, space: Space, number: int) -> dict[str, Any]:
        return latin_hypercube_row(
            space, space.params, self.hypercube_seed, self.space_filling, number
        )

    def tell(self, space: Space, trial: TrialRecord) -> None:
        """Learn a finished trial's outcome; a config that failed teaches the sampler to avoid
        it (see `failure`)."""
        self.told.add(trial.number)
        state = _STATES[trial.state]
        values = list(trial.values) if state == TrialState.COMPLETE and trial.values else None
        if state == TrialState.COMPLETE and values is None:
            state = TrialState.FAIL  # complete but without its objective: nothing to learn from
        elif state == TrialState.FAIL and not trial.interrupted:
            state, values = self.failure()
        asked = self.pending.pop(trial.number, None)
        if asked is not None:
            if state == TrialState.PRUNED and trial.values:
                asked.report(trial.values[0], step=0)
            self.study.tell(asked, values, state=state)
            return
        distributions = {name: distribution(space.params[name]) for name in trial.params}
        self.study.add_trial(
            optuna.trial.create_trial(
                params=encode(space, trial.params),
                distributions=distributions,
                values=values,
                state=state,
                intermediate_values={0: trial.values[0]}
                if state == TrialState.PRUNED and trial.values
                else None,
            )
        )

    def failure(self) -> tuple[TrialState, list[float] | None]:
        """How to tell a trial whose config failed (diverged, errored) so that the sampler
        learns from it: every Optuna sampler ignores FAIL trials outright.

        TPE ranks a pruned trial that reported nothing below every other trial: it gets one.
        The others use completed trials alone: they get the worst value of each objective so
        far (the usual imputation); before any trial has completed there is none to give.
        """
        if isinstance(self.study.sampler, optuna.samplers.TPESampler):
            return TrialState.PRUNED, None
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            return TrialState.FAIL, None
        worst = [
            (min if direction == optuna.study.StudyDirection.MAXIMIZE else max)(
                t.values[i] for t in complete
            )
            for i, direction in enumerate(self.study.directions)
        ]
        return TrialState.COMPLETE, worst


def _reseed(sampler: optuna.samplers.BaseSampler, key: str) -> None:
    """Seed every random state of `sampler`, and of the samplers it holds, from `key`."""
    for name, value in vars(sampler).items():
        if isinstance(value, LazyRandomState):
            value.rng.seed(zlib.crc32(f"{key}:{name}".encode()))
        elif isinstance(value, optuna.samplers.BaseSampler):
            _reseed(value, f"{key}:{name}")


def suggest(trial: optuna.trial.Trial, space: Space) -> dict[str, Any]:
    """Define-by-run: suggest each parameter in condition order, only where it is active."""
    config: dict[str, Any] = {}
    for name, param in space.params.items():
        if not space.is_active(name, config):
            continue
        if isinstance(param, CategoricalParam):
            encoded = trial.suggest_categorical(name, [json.dumps(c) for c in param.choices])
            config[name] = json.loads(encoded)  # type: ignore[arg-type]
        elif isinstance(param, FloatParam):
            config[name] = trial.suggest_float(
                name, param.low, param.high, log=param.log, step=param.step
            )
        else:
            config[name] = trial.suggest_int(
                name, param.low, param.high, log=param.log, step=param.step
            )
    return config


def encode(space: Space, params: dict[str, Any]) -> dict[str, Any]:
    """Our values as Optuna holds them: categoricals as their JSON strings (see `distribution`)."""
    return {
        name: json.dumps(value) if isinstance(space.params[name], CategoricalParam) else value
        for name, value in params.items()
    }
