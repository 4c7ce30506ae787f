"""Coarse-to-fine search, as the course teaches it: set a rough range, sample at random, train
and measure, narrow the range by what the measures showed, repeat; the coarse rounds train
briefly and only the fine rounds train fully, so most of the budget goes where the good
settings are.

Fidelity. Round r trains `epochs_per_round[r]` of the study's epochs (default 1/8, 1/4, 1/2
and 1 for 4 rounds: each round twice the one before, the last in full). A reduced trial
carries its epochs in its params (``training.epochs``), so it is stored, shown, exported and
published with them, and every trial re-runs as it ran. Trials are ranked only against trials
of the same epochs: a 2-epoch loss says nothing against a 16-epoch one.

Allocation. Unless `samples_per_round` fixes one count for every round, the budget's trials
are split so that each round has `round_ratio` (1.5) times the trials of the next, the last
round taking what the others leave (`round_sizes`): 60 trials run 25, 17, 11 and 7, training
20 full trials' worth of epochs where 15 per round trained 28. Many cheap trials look across
the space; fewer, longer ones confirm the best. With ratio 2 and the epochs doubling per
round, each round trains the same epochs, as one of Hyperband's brackets does (32, 16, 8, 4:
16 full trials' worth); 1.5 keeps more full trials, for tasks whose coarse rounds rank poorly.

Promotion. A round opens with the round before's best trials (ranked at the round before's
epochs, in the arms still live), trained again with this round's epochs: `promote` (0.25) of
round 1's trials, a share growing evenly to `promote_last` (0.75) of the last round's
(`promotion_shares`; at 60 trials 5 of 17, 6 of 11 and 6 of 7). A setting that led at 2 epochs
is the likeliest to lead at 4, and the later the round, the better the rank before predicts
its own: the full round is spent mostly on round 2's best rather than on new draws, while the
early rounds keep most of their trials for new ones. The round's other trials are new draws,
the leading arm (the round before's best trial's) taking every other one and the live arms
taking turns at the rest (`turns`).

Arms. The arm parameter (by default the categorical that conditional parameters depend on,
else one named ``*optimizer``, else the first categorical) splits the search: each of its
choices keeps its own box over the other parameters, so adam and sgd each narrow to a learning
rate that suits them, and a conditional child such as momentum narrows within the arms where
it is active. Round 0's trials are shared equally among all arms.

The drop rule. After round r, an arm is dropped when (1) it has had at least `arm_min_trials`
finished trials so far (a diverged trial counts as a sample; an interrupted one does not), and
(2) the best of its trials in round r is worse than that round's best by more than
`drop_margin` times the distance from the round's best to its median (all at round r's
fidelity): with the default margin 1, its best did not reach the round's median. An arm
without a complete trial in round r counts as beaten. The leading arm is never dropped.

Narrowing. An arm's next box spans its best `keep` fraction of the round's trials (at least
one), widened by `margin` of that span on each side and kept inside its box before; a
categorical narrows to the choices those trials used, but to no fewer than half its choices.
No collapse: a numeric range never narrows below `min_width` of its full range (in log space
for log parameters), and a configuration equal to one already run or queued (with its epochs)
is drawn again rather than spent twice.

Sampling. Round 0 is a Latin hypercube per arm over the whole space; a later round's new
draws alternate, per arm, draws around the arm's best trial of the round before (normal,
`SPREAD` of the box, reflected at its edges) with rows of a Latin hypercube of its box. Trials
past the last round keep sampling the last boxes. The study's `strategy_state` shows every
round's trials, epochs and per-arm boxes, the arms dropped, and the result: which arm won and
each arm's best setting.

Measured before this allocation (bench/search.py, seeds 100-119, 60 trials, 15 per round; the
mark is random's 60-trial median best): epochs to reach it, upper end of the bootstrap 95%
interval, 42%, 41%, 45%, 46% of random's 60 trials' epochs on digits, wine, cubic, spirals;
8, 12, 9, 9 of 20 seeds never reached it; the whole budget trained 47% of random's epochs.

Measured with this allocation and a quarter promoted in every round, judged on seeds 100-119:
30%, 28%, 35%, 29% of random's epochs at the upper end (the target, <= 40% on 3 of 4 tasks,
met), but 7, 10, 13, 7 of 20 seeds never reached the mark, and the final best (0.9723, 0.0423,
1.1413, 0.7065) was about random's median (0.9712, 0.0462, 1.1201, 0.6995): the target was met
mostly because the whole budget trains a third of random's epochs, and a seed that misses
counts that plus one trial.

A better search within the rounds, tried and not kept (issue 18; seeds 0-19, then 20-39 as a
check; seeds of 20 missing the mark on digits / wine / cubic / spirals, with their sum). With a
quarter promoted in every round, the rule above (a later round's new draws alternating Latin
hypercube rows with draws around the arm's best of the round before): 3 / 11 / 11 / 6 (31) and
2 / 6 / 12 / 6 (26). TPE's rule within the arm's box (24 candidates from a Parzen estimator
over the arm's good trials, its best quarter at each epochs, normal kernels of 0.25 of the box;
the one with the highest ratio of that density to the one over its other trials kept, the
hypercube rows kept every other draw): 9 / 9 / 9 / 5 (32) and 2 / 10 / 15 / 7 (34). Its 16
variants (candidate counts 1 to 8, kernels of 0.15 to 0.4 or shrinking, the best half good,
only the latest epochs' trials, categoricals out of the ratio, no hypercube rows, and others)
missed on 23 to 38 seeds per block, and giving the leading arm more of the new draws on 28 to
34: none better beyond the noise (a block's sum moves by 4 or 5 between variants that differ in
nothing that matters), none moving the final best out of its interval. Why, as far as
measured: a good trial at one epochs is often not one at the next (wine, seed 3: rmsprop at
learning rate 0.17 and weight decay 2.5e-5 scores a val_loss of 0.0375 at 5 epochs and 0.093 at
10), so a density fitted to the coarser rounds is fitted to noise as much as to the region; and
the final best comes mostly from the last two rounds' 18 trials.

What the long rounds get (issue 18, after the samplers). Where the final best came from, over
seeds 0-19 with a quarter promoted in every round (of 20 seeds per task, the round 0 / 1 / 2 / 3
of the trial that set it, new draws then promotions): digits 0 / 1 / 2 / 2 and 0 / 1 / 5 / 9,
wine 0 / 5 / 1 / 8 and 0 / 2 / 0 / 4, cubic 0 / 0 / 3 / 11 and 0 / 0 / 1 / 5, spirals 1 / 0 / 2
/ 5 and 0 / 0 / 1 / 11: the last round's 2 promotions set the final best about as often as its 5
new draws, 2 to 3 times as often per trial. Hence the growing shares above. Seeds missing the
mark, a quarter in every round against the growing shares: seeds 0-19, 31 against 25 (3 / 11 / 6
/ 5); seeds 20-39, 26 against 23 (2 / 6 / 10 / 5); seeds 40-79 as a further check (their own
mark), 63 against 63. The final best moved on cubic, where it had ended below random's median:
1.1546 against 1.1307 over seeds 0-79 (the mark there 1.1061); it stayed level on the others
(digits 0.9725 and 0.9725, wine 0.0406 and 0.0405, spirals 0.7164 and 0.7104). Tried besides, on
seeds 0-39 (one mark, the 40 seeds' random median; a quarter in every round missed on 56 of 160,
the growing shares on 46): all of the last round promoted 45, shares 0.25 / 0.4 / 0.6 50, half
of every round 65, 0.5 / 0.5 / 1 65, 0.25 / 0.75 / 1 55, 0.25 / 0.25 / 1 53 (fewer new draws in
rounds 1 and 2 cost more than the promotions gave); new draws around the arm's two best trials
rather than its best, 53 (55 with the growing shares); the epochs' slack spent on more full
trials, 25 / 15 / 10 / 10 trials 49, 26 / 16 / 10 / 8 50, 26 / 14 / 10 / 10 56, 24 / 16 / 12 / 8
45, 25 / 15 / 12 / 8 50; `round_ratio` 1.3 65, 1.75 57, 2 60. On seeds 0-79 (320 studies; a
quarter in every round 119, the growing shares 109): 24 / 14 / 10 / 12 trials 102 but its whole
budget 38-42% of random's epochs (cubic at 37.5% at the upper end over 80 seeds, too near the
target to keep), 28 / 12 / 8 / 12 137, 21 / 17 / 14 / 8 117, 24 / 15 / 11 / 10 113, 3 rounds at
1/8, 1/2, 1 (36 / 14 / 10) 140 and at 1/8, 1/4, 1 (34 / 14 / 12) 135, `round_ratio` 1.4 112,
`drop_margin` 2 111, `min_width` 0.2 110, `margin` 0.3 109, `promote` 0.15 111, `promote_last`
0.5 113 and 0.6 115, the live arms taking equal turns at every new draw (no extra share for the
leading arm) 142; on seeds 40-79, shares 0.2 to 0.8 61 and 0.3 to 0.9 71. A plateau: nothing
near the growing shares did better beyond the noise (8 to 10 of 320), and none made
coarse_to_fine's final best clearly better than random's median (over seeds 0-79 it beats 53% of
random's 60-trial studies, against 52% with a quarter in every round). What limits it now is
what round 2 holds when the full round is drawn from it, not the full round's use.

Judged once on seeds 100-119 with the growing shares (bench/search.py's default run, 265 s):
29%, 27%, 35%, 29% of random's epochs at the upper end (the target met on 4 of 4 tasks); 6, 10,
11, 6 seeds of 20 missing the mark (7, 10, 13, 7 with a quarter in every round); final best
0.9724, 0.0424, 1.1542, 0.7025 (0.9723, 0.0423, 1.1413, 0.7065): fewer misses, the final best
level on digits and wine and worse on cubic and spirals. Cubic's mean is worse through one seed
(without it, 1.1345 against 1.1435): seed 100 ends at 1.528, where a quarter in every round
ended at 1.099; rounds 0 and 1 are the same under both rules, and its round 2 now held no trial
of adam, the arm that wins in full (its 1/8- and 1/4-epochs trials rank rmsprop and sgd first),
where its last new draw had found adam at learning rate 0.14 (1.262 at half the epochs, 1.099 in
full). The risk of the rule: when round 2's pool misses the region that wins in full, the full
round retrains its weak best and no new draw is left to find it.

New draws for the arms the promotions leave out, tried and not kept (issue 18, after the growing
shares; seeds 0-79 on one mark per task, seeds missing it of 320 with, in brackets, the final
best on digits / wine / cubic / spirals; the growing shares 109 (0.9725 / 0.0405 / 1.1307 /
0.7104), the noise 8 to 10). A round's first new draws one per live arm without a promoted trial
(the best-ranked such arm first), before the turns: in every later round 128 (spirals 43 of 80,
0.6900), in rounds 2 and 3 118, in round 2 only 117 (0.9721 / 0.0407 / 1.1317 / 0.7050), in
round 3 only 108 (there an arm is seldom left out); in rounds 2 and 3 with the promotions cut by
one per such draw rather than the turns, 115 (cubic 1.1425). The promotions capped per arm, the
next of the other arms promoted instead: 2 per arm in every later round 121 (cubic 46 of 80,
1.1379), 3 per arm 117, 2 from round 2 on 122, 3 in round 2 only 113; 2 per arm with the freed
trials new draws 114; each live arm's best promoted first in round 2, 114. None better beyond
the noise; the whole budget stayed 32-36% of random's epochs. The reserved draws in round 2 do
mend cubic's seed 100 (1.528 to 1.099), but over seeds 0-79 they changed 236 of the 320 studies,
mending 6 misses and making 14: those are the studies whose round 2 promotions leave an arm out,
and with the reserved draws the final best came from such an arm in 10 of them (3 / 0 / 3 / 4),
so the reserved draw mostly takes a turn from the arms that win.

How well a coarse round ranks (Spearman correlation of the value at 1/8, 1/4, 1/2 of the
epochs with the value at all of them, 40 random configurations per task): digits 0.67, 0.88,
0.94; wine 0.95, 0.95, 0.99; cubic 0.77, 0.94, 0.96; spirals 0.54, 0.70, 0.75 (there the best
at 1/4 ranked 29th of 40 in full). Good enough on three tasks to let 1/8 and 1/4 of the
epochs choose what trains longer; weak on spirals, where the full round's few trials matter.

Tuned on seeds 0-19 (seeds missing the mark, of 20, on cubic / wine / digits / spirals), at
`round_ratio` 2 first: each arm's best promoted and the arms taking equal turns, 15 / 4 / 11;
promote 0.25 with the leading arm taking every other new draw, 6 / 7 / 4 / 14; promote 0.125,
11 / 7 / 9; promote 0.5, 11 / 8; `drop_margin` 2 or `arm_min_trials` 8 (arms kept longer),
7 / 7 / 4, spirals 6 of 10; `arm_min_trials` 3 changed nothing. Then `round_ratio` 1.5 (the
default), 8 / 8 / 3 / 6 with a better final best on all four tasks, the whole budget training
33% of random's epochs (27% at ratio 2); `round_ratio` 1 (the old equal split), spirals 4 of
10 at seeds 0-9, its whole budget 47%. Earlier (seeds 0-4, the equal split) these did no
better beyond the noise: `drop_margin` 0.5, `keep` 0.5, epochs 1/4, 1/2, 1, 1 and 1/4, 1/2, 1;
what helped there: boxes at most halving per round, categoricals kept to at least half their
choices, and each round's best trained again first.
"""

from __future__ import annotations

import json
import math
import statistics
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpsearch.search.space import CategoricalParam, IntParam, ParamSpec, Space
from hpsearch.search.strategies.base import Proposal, Strategy, TrialRecord
from hpsearch.search.strategies.random import fraction_of, latin_hypercube_row, value_at

Box = dict[str, ParamSpec]
FINISHED = ("complete", "pruned", "failed")
# A later round's numeric draws around an arm's best trial: a normal with this standard
# deviation, as a fraction of the box's width. A quarter keeps most draws near the best point
# while the box's edges stay within two deviations, so the whole box is still explored.
SPREAD = 0.25
# How often a draw around the best keeps the best trial's other categorical choices.
KEEP_CHOICE = 0.5
# A box keeps at least this fraction of its width from one round to the next: a round's few
# trials per arm (2 or 3 in round 0) rank too roughly to cut more at once.
SHRINK = 0.5
# Draws tried for a configuration not run yet before the strategy gives up on the trial.
MAX_REDRAWS = 32
# Where the default fidelity schedule stops halving: 1/8 of the epochs at the earliest.
MIN_FRACTION = 1 / 8
# The arm of a space with no categorical parameter: the whole space is one arm.
ONE_ARM = "all"


def default_schedule(rounds: int) -> list[float]:
    """Each round twice the epochs of the one before, the last in full, none below 1/8."""
    return [max(MIN_FRACTION, 0.5 ** (rounds - 1 - r)) for r in range(rounds)]


def round_sizes(budget: int, rounds: int, ratio: float) -> list[int]:
    """The budget's trials split over the rounds, each round `ratio` times the next (at
    least 2 each, to rank): the last round takes what the others leave."""
    weights = [ratio ** (rounds - 1 - r) for r in range(rounds)]
    sizes = [max(2, round(budget * w / sum(weights))) for w in weights[:-1]]
    return [*sizes, max(2, budget - sum(sizes))]


def promotion_shares(rounds: int, first: float, last: float) -> list[float]:
    """The share of each round's trials that are the round before's best: none in round 0,
    `first` in round 1, growing evenly to `last` in the last round."""
    if rounds < 2:
        return [0.0] * rounds
    steps = rounds - 2
    return [
        0.0,
        *(first + (last - first) * (r / steps if steps else 1.0) for r in range(steps + 1)),
    ]


def turns(live: Sequence[str], leader: str | None, count: int) -> list[str]:
    """The arms of a round's first `count` new draws: the live arms take turns, and with a
    `leader`, it takes every other draw besides."""
    if leader is None:
        return [live[j % len(live)] for j in range(count)]
    return [leader if j % 2 == 0 else live[(j // 2) % len(live)] for j in range(count)]


def arm_key(choice: Any) -> str:
    """A categorical choice as a JSON object key (choices may be lists, such as [64, 32])."""
    return choice if isinstance(choice, str) else json.dumps(choice)


def pick_arm(space: Space) -> str | None:
    """The categorical that splits the search into arms: the one conditional parameters
    depend on, else an optimizer, else the first categorical; None when there is none."""
    categoricals = [n for n, p in space.params.items() if isinstance(p, CategoricalParam)]
    conditioned = {key for p in space.params.values() for key in p.when or {}}
    for name in categoricals:
        if name in conditioned:
            return name
    for name in categoricals:
        if name.rsplit(".", 1)[-1] == "optimizer":
            return name
    return categoricals[0] if categoricals else None


@dataclass
class Round:
    """One round: the epochs its trials train, and each live arm's box."""

    index: int
    epochs: int | None
    """The epochs its trials train; None when the strategy sets none (the study's own)."""
    fraction: float
    arms: dict[str, Box]
    dropped: list[str] = field(default_factory=list)
    """Arms dropped at the end of the round before."""


class CoarseToFineStrategy(Strategy):
    """Rounds of fidelity-growing, per-arm boxes that narrow to their best trials.

    Example::

        strategy = CoarseToFineStrategy(seed=0, rounds=4, samples_per_round=15, keep=0.25,
                                        margin=0.1, direction="maximize",
                                        epochs_key="training.epochs", full_epochs=16)
        strategy.ask(space, [], 4)  # round 0: 2 epochs each, the arms taking turns
    """

    def __init__(
        self,
        *,
        seed: int,
        rounds: int,
        samples_per_round: int | Sequence[int],
        keep: float,
        margin: float,
        direction: str,
        epochs_per_round: Sequence[float] | None = None,
        epochs_key: str | None = None,
        full_epochs: int | None = None,
        min_width: float = 0.1,
        arm_min_trials: int = 4,
        drop_margin: float = 1.0,
        promote: float = 0.25,
        promote_last: float = 0.75,
    ) -> None:
        self.seed = seed
        self.rounds = rounds
        sizes = (
            [samples_per_round] * rounds
            if isinstance(samples_per_round, int)
            else list(samples_per_round)
        )
        self.sizes = sizes
        # The number of each round's first trial.
        self.starts = [sum(sizes[:r]) for r in range(rounds)]
        self.promote = promotion_shares(rounds, promote, promote_last)
        self.keep = keep
        self.margin = margin
        self.minimize = direction == "minimize"
        # Without a setting to reduce, every round trains what the study says.
        fidelity = epochs_key is not None and full_epochs is not None
        self.fractions = list(epochs_per_round or default_schedule(rounds)) if fidelity else []
        self.epochs_key = epochs_key
        self.full_epochs = full_epochs
        self.min_width = min_width
        self.arm_min_trials = arm_min_trials
        self.drop_margin = drop_margin

    def round_of(self, number: int) -> int:
        """The round trial `number` belongs to (trials past the last stay in the last)."""
        return next(r for r in reversed(range(self.rounds)) if number >= self.starts[r])

    def epochs_at(self, index: int) -> int | None:
        """The epochs round `index` trains: None when in full (the study's own setting)."""
        if not self.fractions or self.full_epochs is None:
            return None
        epochs = max(1, round(self.fractions[index] * self.full_epochs))
        return None if epochs >= self.full_epochs else epochs

    def cost(self, start: int, stop: int) -> float:
        """Trials `start` to `stop - 1` in full trials: each weighs its round's epochs over the
        study's (trials past the last round train as the last does)."""
        total = 0.0
        for r in range(self.rounds):
            end = self.starts[r + 1] if r + 1 < self.rounds else max(stop, start)
            count = min(stop, end) - max(start, self.starts[r])
            if count > 0:
                epochs = self.epochs_at(r)
                full = self.full_epochs or 1
                total += count * (1.0 if epochs is None else epochs / full)
        return total

    def epochs_of(self, trial: TrialRecord) -> int | None:
        """The epochs `trial` trained, None for the study's own (full fidelity)."""
        return trial.params.get(self.epochs_key) if self.epochs_key else None

    def ask(self, space: Space, history: Sequence[TrialRecord], n: int) -> list[Proposal]:
        arm = pick_arm(space)
        rounds = self.plan(space, history)
        seen = {config_key(t.params) for t in history}
        proposals = []
        for number in range(len(history), len(history) + n):
            index = self.round_of(number)
            if index >= len(rounds):
                break  # the round before is still running: its results decide the next boxes
            config = self._fresh(space, history, arm, rounds[index], number, seen)
            if config is None:
                break  # every draw was a configuration already run: the space is spent
            seen.add(config_key(config))
            proposals.append(Proposal(config))
        return proposals

    def describe(self, space: Space, history: Sequence[TrialRecord]) -> dict[str, Any]:
        """Every round so far (its trials, how many of them open it as the round before's best
        trained again, its epochs, arms' boxes, the arms it dropped) and the result: each arm's
        best trial at the most epochs it trained, and the winning arm."""
        arm = pick_arm(space)
        rounds = self.plan(space, history)
        return {
            "arm": arm,
            "rounds": [
                {
                    "round": r.index + 1,
                    "trials": self.sizes[r.index],
                    "promoted": len(self._promoted(self._previous(history, arm, r), r.index)),
                    "epochs": r.epochs if r.epochs is not None else self.full_epochs,
                    "fraction": r.fraction,
                    "arms": {key: box_as_data(box) for key, box in r.arms.items()},
                    "dropped": r.dropped,
                }
                for r in rounds
            ],
            "result": self.result(space, history, rounds),
        }

    def plan(self, space: Space, history: Sequence[TrialRecord]) -> list[Round]:
        """Every round whose boxes are known: round 0's, and one per finished round."""
        arm = pick_arm(space)
        whole = {name: p for name, p in space.params.items() if name != arm}
        choices = space.params[arm].choices if arm else [ONE_ARM]  # type: ignore[union-attr]
        rounds = [
            Round(0, self.epochs_at(0), self._fraction(0), {arm_key(c): whole for c in choices})
        ]
        for r in range(self.rounds - 1):
            members = [t for t in history if self.round_of(t.number) == r]
            if len(members) < self.sizes[r] or any(t.state not in FINISHED for t in members):
                break
            before = [t for t in history if self.round_of(t.number) <= r]
            rounds.append(self._next(space, arm, rounds[-1], members, before))
        return rounds

    def result(
        self, space: Space, history: Sequence[TrialRecord], rounds: Sequence[Round]
    ) -> dict[str, Any]:
        """Each arm's best trial at the most epochs it has complete trials at, and the arm
        whose best is best among those at the most epochs any arm reached."""
        arm = pick_arm(space)
        dropped = {key: r.index for r in rounds for key in r.dropped}
        arms: dict[str, dict[str, Any]] = {}
        for key in rounds[0].arms:
            mine = [t for t in history if arm_of(t, arm) == key]
            top = max(
                (self._full(t) for t in mine if t.state == "complete" and t.value is not None),
                default=None,
            )
            ranked = [t for t in self._ranked(mine) if self._full(t) == top]
            best = ranked[0] if ranked else None
            arms[key] = {
                "best_trial": best.number if best else None,
                "value": best.value if best else None,
                "epochs": top,
                "params": best.params if best else None,
                "dropped_after_round": dropped.get(key),
            }
        reached = [a for a in arms.values() if a["value"] is not None]
        most = max((a["epochs"] for a in reached), default=None)
        contenders = {
            k: a for k, a in arms.items() if a["value"] is not None and a["epochs"] == most
        }
        sign = 1.0 if self.minimize else -1.0
        winner = min(contenders, key=lambda k: sign * contenders[k]["value"], default=None)
        return {"winner": winner, "epochs": most, "arms": arms}

    def _fraction(self, index: int) -> float:
        return self.fractions[index] if self.fractions else 1.0

    def _full(self, trial: TrialRecord) -> int:
        """The epochs `trial` trained, counting the study's own as its full epochs."""
        epochs = self.epochs_of(trial)
        return epochs if epochs is not None else (self.full_epochs or 0)

    def _ranked(self, trials: Sequence[TrialRecord]) -> list[TrialRecord]:
        scored = [t for t in trials if t.state == "complete" and t.value is not None]
        return sorted(scored, key=lambda t: t.value if self.minimize else -t.value)  # type: ignore[operator]

    def _loss(self, value: float) -> float:
        return value if self.minimize else -value

    def _next(
        self,
        space: Space,
        arm: str | None,
        previous: Round,
        members: Sequence[TrialRecord],
        before: Sequence[TrialRecord],
    ) -> Round:
        """The round after `previous`, from its `members` (`before`: every trial so far)."""
        index = previous.index + 1
        # Ranked only against the round's own fidelity: a retried trial of an earlier round,
        # or an imported one, may sit among its numbers with other epochs.
        same = [t for t in members if self.epochs_of(t) == previous.epochs]
        scored = self._ranked(same)
        by_arm = {key: [t for t in scored if arm_of(t, arm) == key] for key in previous.arms}
        dropped = self._beaten(previous, scored, by_arm, arm, before)
        boxes = {
            key: self._narrow(space, box, by_arm[key])
            for key, box in previous.arms.items()
            if key not in dropped
        }
        return Round(index, self.epochs_at(index), self._fraction(index), boxes, dropped)

    def _beaten(
        self,
        previous: Round,
        scored: Sequence[TrialRecord],
        by_arm: dict[str, list[TrialRecord]],
        arm: str | None,
        before: Sequence[TrialRecord],
    ) -> list[str]:
        """The arms the drop rule (see the module's docstring) drops after `previous`."""
        if len(previous.arms) < 2 or not scored:
            return []
        best = self._loss(scored[0].value)  # type: ignore[arg-type]
        median = statistics.median(self._loss(t.value) for t in scored)  # type: ignore[arg-type]
        bar = best + self.drop_margin * (median - best)
        leader = arm_of(scored[0], arm)
        dropped = []
        for key in previous.arms:
            samples = sum(
                1
                for t in before
                if arm_of(t, arm) == key and t.state in FINISHED and not t.interrupted
            )
            mine = by_arm[key]
            beaten = not mine or self._loss(mine[0].value) > bar  # type: ignore[arg-type]
            if key != leader and samples >= self.arm_min_trials and beaten:
                dropped.append(key)
        return dropped

    def _narrow(self, space: Space, box: Box, scored: Sequence[TrialRecord]) -> Box:
        if not scored:
            return box  # nothing learned of this arm: search the same box again
        kept = scored[: max(1, math.ceil(self.keep * len(scored)))]
        narrowed: Box = {}
        for name, param in box.items():
            values = [t.params[name] for t in kept if name in t.params]
            if not values:
                narrowed[name] = param  # inactive in this arm's best trials: nothing to narrow
            elif isinstance(param, CategoricalParam):
                whole = space.params[name]
                narrowed[name] = self._narrow_choices(param, whole, values, scored, name)  # type: ignore[arg-type]
            else:
                narrowed[name] = self._narrow_range(param, space.params[name], values)
        return narrowed

    def _narrow_choices(
        self,
        param: CategoricalParam,
        whole: CategoricalParam,
        values: list[Any],
        scored: Sequence[TrialRecord],
        name: str,
    ) -> CategoricalParam:
        # The kept trials' choices, then the others by their best trial, down to half of the
        # whole's choices and no fewer: its minimum width, as a range has one.
        order = [arm_key(t.params[name]) for t in scored if name in t.params]
        ranked = [
            *map(arm_key, values),
            *order,
            *map(arm_key, param.choices),
            *map(arm_key, whole.choices),
        ]
        wanted = max(len(set(map(arm_key, values))), math.ceil(len(whole.choices) / 2))
        keep = set(list(dict.fromkeys(ranked))[:wanted])
        used = [c for c in whole.choices if arm_key(c) in keep]
        return param.model_copy(update={"choices": used, "values": None})

    def _narrow_range(self, param: ParamSpec, whole: ParamSpec, values: list[Any]) -> ParamSpec:
        to, back = (math.log, math.exp) if param.log else (float, float)
        lo, hi = to(min(values)), to(max(values))
        pad = self.margin * (hi - lo)
        # Kept inside the whole range, not the box before: a best trial on the box's edge
        # moves the box that way rather than pinning it there.
        full_low, full_high = to(whole.low), to(whole.high)  # type: ignore[union-attr]
        lo, hi = max(full_low, lo - pad), min(full_high, hi + pad)
        # Never narrower than `min_width` of the whole range: a box of one point re-runs
        # one configuration; the box grows about its centre, shifted back inside the range.
        least = max(
            self.min_width * (full_high - full_low), SHRINK * (to(param.high) - to(param.low))
        )  # type: ignore[union-attr]
        if hi - lo < least:
            centre = min(max((lo + hi) / 2, full_low + least / 2), full_high - least / 2)
            lo, hi = centre - least / 2, centre + least / 2
        new_low = max(whole.low, back(lo))  # type: ignore[union-attr]
        new_high = min(whole.high, back(hi))  # type: ignore[union-attr]
        step = param.step  # type: ignore[union-attr]
        if step is not None:
            # Stay on the parameter's grid: bounds move outwards to the nearest steps.
            origin = whole.low  # type: ignore[union-attr]
            new_low = origin + step * math.floor((new_low - origin) / step + 1e-9)
            new_high = min(whole.high, origin + step * math.ceil((new_high - origin) / step - 1e-9))  # type: ignore[union-attr]
        if isinstance(param, IntParam):
            new_low, new_high = math.floor(new_low + 1e-9), math.ceil(new_high - 1e-9)
        return param.model_copy(update={"low": new_low, "high": new_high, "values": None})

    def _fresh(
        self,
        space: Space,
        history: Sequence[TrialRecord],
        arm: str | None,
        round_: Round,
        number: int,
        seen: set[str],
    ) -> dict[str, Any] | None:
        """Trial `number`'s configuration: a promotion from the round before, else its first
        draw not already run or queued."""
        i = number - self.starts[round_.index]
        ranked = self._previous(history, arm, round_)
        promoted = self._promoted(ranked, round_.index)
        if i < len(promoted):
            config = {n: promoted[i].params[n] for n in space.params if n in promoted[i].params}
            if round_.epochs is not None:
                config[self.epochs_key] = round_.epochs  # type: ignore[index]
            if config_key(config) not in seen:
                return config
        # Rows past the promotions; a promotion already run (the same epochs) draws a row of
        # its own past the round's, so that it repeats no other trial's draw.
        j = i - len(promoted) if i >= len(promoted) else self.sizes[round_.index] + i
        live = list(round_.arms)
        leader = arm_of(ranked[0], arm) if ranked else None
        order = turns(live, leader, j + 1)
        key, row = order[j], order.count(order[j]) - 1
        ranges = dict(round_.arms[key])
        if arm is not None:
            whole = space.params[arm]
            choice = next(c for c in whole.choices if arm_key(c) == key)  # type: ignore[union-attr]
            ranges[arm] = whole.model_copy(update={"choices": [choice], "values": None})
        best = next((t for t in ranked if arm_of(t, arm) == key), None)
        new = max(1, self.sizes[round_.index] - len(promoted))
        share = max(1, turns(live, leader, new).count(key))
        for attempt in range(MAX_REDRAWS):
            config = self._draw(space, ranges, round_, key, row, share, best, attempt)
            if round_.epochs is not None:
                config[self.epochs_key] = round_.epochs  # type: ignore[index]
            if config_key(config) not in seen:
                return config
        return None

    def _promoted(self, ranked: Sequence[TrialRecord], index: int) -> list[TrialRecord]:
        """The round before's best trials (`ranked`, best first) that round `index` opens with."""
        # Less a hair: a share such as 0.2 + 0.6 / 2 times 10 trials is 5, not 5.000000001.
        share = self.promote[index] * self.sizes[index]
        return list(ranked[: math.ceil(share - 1e-9)])

    def _previous(
        self, history: Sequence[TrialRecord], arm: str | None, round_: Round
    ) -> list[TrialRecord]:
        """The round before `round_`'s complete trials at its epochs in the arms still live,
        best first (none for round 0)."""
        if round_.index == 0:
            return []
        epochs = self.epochs_at(round_.index - 1)
        return self._ranked(
            [
                t
                for t in history
                if self.round_of(t.number) == round_.index - 1
                and self.epochs_of(t) == epochs
                and arm_of(t, arm) in round_.arms
            ]
        )

    def _draw(
        self,
        space: Space,
        ranges: Box,
        round_: Round,
        key: str,
        row: int,
        share: int,
        best: TrialRecord | None,
        attempt: int,
    ) -> dict[str, Any]:
        """Draw `attempt` of an arm's `row`-th new trial of the round (of `share`): a Latin
        hypercube row or a draw around the arm's best, then (drawing again) plain uniform
        draws in the box."""
        seed = zlib.crc32(f"{self.seed}/{round_.index}/{key}".encode())
        if attempt == 0 and (best is None or row % 2):
            return latin_hypercube_row(space, ranges, seed, share, row)
        if attempt == 0 or (best is not None and attempt % 2 == 0):
            return self._around(space, ranges, best, [seed, row, attempt])  # type: ignore[arg-type]
        rng_keys = [seed, row, attempt]
        config: dict[str, Any] = {}
        for name in space.params:
            if space.is_active(name, config):
                rng = self._rng(name, *rng_keys)
                config[name] = value_at(ranges[name], rng.uniform())
        return config

    def _rng(self, name: str, *keys: int) -> np.random.Generator:
        # Seeded by round, arm, row and parameter name, as random search is: a trial's draw
        # depends neither on the batching nor on the order the parameters are listed in.
        return np.random.default_rng([*keys, zlib.crc32(name.encode())])

    def _around(self, space: Space, box: Box, best: TrialRecord, keys: list[int]) -> dict[str, Any]:
        """A draw inside `box`, centred on the `best` trial's values."""
        config: dict[str, Any] = {}
        for name in space.params:
            if not space.is_active(name, config):
                continue
            param, rng = box[name], self._rng(name, *keys)
            centre = best.params.get(name)
            if isinstance(param, CategoricalParam):
                keep = centre in param.choices and rng.uniform() < KEEP_CHOICE
                config[name] = centre if keep else value_at(param, rng.uniform())
            elif centre is None or not param.low <= centre <= param.high:
                config[name] = value_at(param, rng.uniform())  # nothing inside to centre on
            else:
                at = reflect(rng.normal(fraction_of(param, centre), SPREAD))
                config[name] = value_at(param, min(at, math.nextafter(1.0, 0.0)))
        return config


def arm_of(trial: TrialRecord, arm: str | None) -> str | None:
    """The arm `trial` belongs to (None when its arm parameter is missing)."""
    if arm is None:
        return ONE_ARM
    return arm_key(trial.params[arm]) if arm in trial.params else None


def config_key(params: dict[str, Any]) -> str:
    """A configuration as a comparable string: the same values give the same key."""
    return json.dumps(params, sort_keys=True)


def reflect(u: float) -> float:
    """``u`` folded into [0, 1] as a mirror at each end would: a draw past an edge of the box
    lands as far inside it. Clamped, every such draw would be the edge's own value, and
    training being deterministic, each repeat a trial wasted (a quarter of a later round's
    trials on bench/search.py's digits task, whose best sat on the box's edge)."""
    u = abs(u) % 2.0
    return 2.0 - u if u > 1.0 else u


def box_as_data(box: Box) -> dict[str, dict[str, Any]]:
    """A box as plain JSON: ``{"low", "high", "log"}`` per numeric parameter, ``{"choices"}``
    else."""
    return {
        name: {"choices": p.choices}
        if isinstance(p, CategoricalParam)
        else {"low": p.low, "high": p.high, "log": p.log}
        for name, p in box.items()
    }
