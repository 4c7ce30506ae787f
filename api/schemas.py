"""Wire shapes of the REST API, named by role; separate from the tables in `db/models.py`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from hpsearch.api.params import MAX_ID
from hpsearch.db.models import Role
from hpsearch.db.names import PresetName, ShortName


class TrialPublic(BaseModel):
    id: int
    number: int
    params: dict[str, Any]
    state: str
    reason: str | None
    value: float | None
    values: dict[str, Any] | None
    worker: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lineage: dict[str, Any] | None = None
    """pbt: the member, its generation, the parent trial (by number) whose state it started
    from, and for a copy the member copied and what changed (name -> [before, after])."""


class TrialsPublic(BaseModel):
    data: list[TrialPublic]
    next_cursor: int
    """The last trial's number (or `after` again when none): pass it as `after` to get only
    the trials queued since this page."""


class TrialDetail(TrialPublic):
    config: dict[str, Any] | None
    """The full config the trial trained with: the study's base config with its params (null
    when those params made no valid config, which the trial's reason then says)."""
    curve: list[dict[str, Any]]
    """Per-epoch metrics, each with its `step`."""
    traceback: str | None
    """A trial an exception ended (reason `error: Type: message`): its traceback's last lines,
    as Python prints them on the worker."""


class MetricReport(BaseModel):
    trial_number: int
    step: int
    metrics: dict[str, Any]


class MetricsPublic(BaseModel):
    data: list[MetricReport]
    """The reports of every trial of a study, in the order they were stored."""
    next_cursor: int
    """Opaque (not a step nor a trial number): pass it as `after` to get the reports stored
    since this page."""


class ImportancesPublic(BaseModel):
    metric: str
    """The objective the importances are of: the study's first."""
    importances: dict[str, float]
    """Each parameter's share of the objective's variation, largest first, summing to 1;
    empty when `reason` says why there are none."""
    trials_used: int
    """The complete trials it was computed on: the latest ones, at most 1000."""
    evaluator: str
    reason: str | None


class StudyPublic(BaseModel):
    id: int
    name: str
    team: str
    tags: list[str]
    status: str
    strategy: str
    objectives: list[dict[str, Any]]
    trials_finished: int
    trials_in_flight: int
    trials_imported: int = 0
    """Complete trials brought in with the study file's `history`: in `trials_by_state`, not
    in `trials_finished` nor in the budget."""
    budget_trials: int
    parallelism: int
    trials_by_state: dict[str, int]
    best_trial: TrialPublic | None
    pareto_front: list[TrialPublic] | None = None
    """Multi-objective studies: the completed trials no other trial dominates."""
    strategy_state: dict[str, Any]
    """What the strategy shows of itself, e.g. coarse_to_fine's box of every round."""
    eta_seconds: float | None
    """Time left at the pace trials have finished so far (from the study's start to its last
    finished trial); null until one finishes or once the study has ended."""
    trainer: str = "numpy"
    datasets: dict[str, dict[str, int]] = {}
    """The uploads its study file names by name, as resolved when it was submitted (and kept
    since): ref -> {id, version}, e.g. {"churn": {"id": 17, "version": 2}}."""
    waiting: str | None = None
    """Why a running study makes no progress, e.g. no live worker offers its trainer."""
    created_at: datetime
    finished_at: datetime | None


class StudySummary(BaseModel):
    id: int
    name: str
    team: str
    tags: list[str]
    status: str
    strategy: str
    trials_finished: int
    budget_trials: int
    best_value: float | None
    """The best complete trial's value of the first objective."""
    best_metric: str
    """The first objective's metric, which `best_value` is a value of."""
    created_at: datetime
    finished_at: datetime | None


class StudiesPublic(BaseModel):
    data: list[StudySummary]
    count: int


class TeamPublic(BaseModel):
    id: int
    name: str
    role: str


class MePublic(BaseModel):
    id: int
    name: str
    teams: list[TeamPublic]


class MemberPublic(BaseModel):
    user_id: int
    name: str
    role: str


class MemberUpdate(BaseModel):
    role: Role


class InvitationCreate(BaseModel):
    user: Annotated[ShortName, StringConstraints(min_length=1)]
    role: Role = Role.MEMBER


class InvitationPublic(BaseModel):
    """A pending invitation: `user` is the name as the team admin typed it."""

    id: int
    team: str
    user: str
    role: Role
    invited_by: str | None
    created_at: datetime


class TokenCreate(BaseModel):
    name: ShortName = ""
    expires_in_days: int | None = Field(90, ge=1, le=3650, description="null: never expires.")


class TokenPublic(BaseModel):
    id: int
    name: str
    prefix: str
    """The first characters of the token, to tell it apart; the rest is never shown again."""
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenPublic):
    token: str
    """The secret, shown this once: only its hash is stored."""


class DatasetPublic(BaseModel):
    id: int
    """A study file may also name it `dataset: {upload_id: 12}`."""
    team: str
    name: str
    version: int
    ref: str
    """name@version: what a study file's `dataset.upload` takes (or `name` alone: the latest)."""
    format: str
    content_hash: str
    size_bytes: int
    summary: dict[str, Any]
    created_at: datetime


class PresetCreate(BaseModel):
    study_id: int = Field(ge=1, le=MAX_ID)
    trial_number: int = Field(ge=0, le=MAX_ID)
    name: PresetName = Field(description="Published as team/name.")
    visibility: Literal["team", "public"] = "team"


class PresetPublic(BaseModel):
    ref: str
    """team/name@version: what a study file's `warm_start.preset` takes."""
    team: str
    name: str
    version: int
    visibility: str
    config: dict[str, Any]
    """The full training config: dataset, model and training."""
    study_id: int | None
    trial_id: int | None
    trial_number: int | None = None
    """The trial's number in its study (what the dashboard's trial page is addressed by)."""
    dataset_hash: str | None
    values: dict[str, Any] | None
    engine_version: str
    weights_bytes: int | None = None
    """The size of the trained model the preset carries (`.../weights`); None: it has none."""
    created_by: str | None
    created_at: datetime


class PresetsPublic(BaseModel):
    data: list[PresetPublic]


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class SettingPublic(BaseModel):
    """One setting of a trainer's config."""

    path: str
    """Dotted, as a study's `config` nests it and its `space` names it."""
    type: str
    """e.g. `number`, `integer or null`, `list of integer`, `one of: relu, tanh`."""
    default: Any = None
    required: bool
    """No default: a study must give it."""
    bounds: str | None
    """e.g. `>= 0, < 1`; null when unbounded."""
    description: str | None


class TrainerPublic(BaseModel):
    """A trainer as the workers that offer it announced it."""

    name: str
    version: str
    step_metrics: list[str]
    """Reported every step: what a pruner may compare."""
    final_metrics: list[str]
    """Returned at the end: what an objective may name."""
    config_schema: dict[str, Any]
    """Its config as JSON schema: what a study's `config` and `space` are checked against."""
    resumable: bool = False
    """It saves and resumes its state: what population-based training (`pbt`) needs."""
    workers: int
    """Workers seen lately that offer it (0: its studies wait)."""
    hosts: list[str]
    """The host of each of those workers, sorted (a host running two workers is listed twice)."""
    last_seen_at: datetime
    settings: list[SettingPublic]
    """Each leaf setting of its config by dotted path, read from `config_schema`: what a study's
    `config` may fix and its `space` may search."""


# An agent names itself (`host:pid` by default); its trials record it as `agent:<name>`.
# The length apart from the pattern, which a bounded repetition of \w makes slow to compile
# (see `Objective.metric`).
AgentName = Annotated[str, StringConstraints(pattern=r"^[\w.:@-]+$", max_length=150)]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
FiniteMetrics = Annotated[
    dict[str, Annotated[float, Field(allow_inf_nan=False)]], Field(max_length=100)
]


class LeaseCreate(BaseModel):
    agent: AgentName
    """Who asks: the same name must come with the leased trial's reports and its end."""


class LeasePublic(BaseModel):
    """A trial leased to an agent: it is `running` for the agent until it finishes it, or
    until its reports (the heartbeat) stop for `lease_s`: then it is `failed: lost`."""

    study_id: int
    number: int
    params: dict[str, Any]
    config: dict[str, Any]
    """The full config to train: the study's base config with the trial's params."""
    trainer: str
    seed: int
    study_created_at: datetime
    """With the study's id, what an agent keys what it caches of the study by (its datasets)."""
    heartbeat_s: float
    """Report (an empty report is a heartbeat) at least this often."""
    lease_s: float


class TrainerOfferCreate(BaseModel):
    """A trainer as an agent runs it: a `Trainer` declares its version, config schema and
    metrics; a plain function declares none of them (`declared` false), and its studies are
    not checked against it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    version: str = Field("", max_length=100)
    config_schema: dict[str, Any] = {}
    step_metrics: list[MetricName] = Field([], max_length=200)
    final_metrics: list[MetricName] = Field([], max_length=200)
    declared: bool = True
    resumable: bool = False


class OfferCreate(BaseModel):
    agent: AgentName
    host: str = Field(min_length=1, max_length=200)
    """The agent's machine, as the Trainers page lists it."""
    trainer: TrainerOfferCreate


class OfferPublic(BaseModel):
    """Offer again at least every `heartbeat_s`: an offer not renewed for `lease_s` is not
    live any more."""

    heartbeat_s: float
    lease_s: float


class StepReport(BaseModel):
    step: int = Field(ge=0, le=MAX_ID)
    metrics: FiniteMetrics


class ReportCreate(BaseModel):
    agent: AgentName
    reports: list[StepReport] = Field(default=[], max_length=10_000)
    """In step order; none: a heartbeat only."""


class ReportAnswer(BaseModel):
    stop: bool
    """Stop training now: see `reason`."""
    reason: Literal["pruned", "cancelled", "timeout"] | None = None


class FinishCreate(BaseModel):
    agent: AgentName
    state: Literal["complete", "pruned", "failed"]
    reason: str | None = Field(None, max_length=2000)
    """Why it failed or was pruned, e.g. `error: ValueError: ...` or `pruned at step 3`."""
    values: FiniteMetrics | None = None
    """The final metrics (those reached, for a failed trial)."""
    traceback: str | None = Field(None, max_length=8000)
    reports: list[StepReport] = Field(default=[], max_length=10_000)
    """Reports not sent yet, in step order."""
