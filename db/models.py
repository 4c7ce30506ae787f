"""Tables. Wire shapes live in `api/schemas.py`; these document the stored schema."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from hpsearch.db.states import Role, TrialState

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the tables use."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite hands back naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime()}


class StudyStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    FAILED = "failed"


FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)
IN_FLIGHT_STATES = (TrialState.QUEUED, TrialState.RUNNING)


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as their values in a VARCHAR: portable, and readable in psql / sqlite3.
    return Enum(cls, native_enum=False, values_callable=lambda e: [m.value for m in e], length=16)


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Membership(Base):
    __tablename__ = "memberships"
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    team_id: Mapped[int] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role))


class Invitation(Base):
    """A team admin's offer of a role to a user, pending until the user accepts or declines.

    `user_name` is the name as the admin typed it; `user_id` is that user when the name existed,
    else null, so an invitation to an unknown name reaches no one (not even a user of that name
    created later) and the admin's answer is the same either way.
    """

    __tablename__ = "invitations"
    __table_args__ = (UniqueConstraint("team_id", "user_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    user_name: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role))
    invited_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored, the prefix identifies it in listings."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Dataset(Base):
    __tablename__ = "datasets"
    # Each upload under a name is its next version, as a preset's publications are.
    __table_args__ = (UniqueConstraint("team_id", "name", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    format: Mapped[str] = mapped_column(String(8))
    content_hash: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int]
    # What validation found: rows, and each column's kind; shown without reading the content.
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    # Up to the upload limit: loaded only where a worker trains on it, never with the row.
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# Uploads are streamed to agents a part at a time: uncompressed out-of-line storage lets
# PostgreSQL read a part's chunks alone (migration 0008). SQLite has no such setting.
event.listen(
    Dataset.__table__,
    "after_create",
    DDL("ALTER TABLE datasets ALTER COLUMN content SET STORAGE EXTERNAL").execute_if(
        dialect="postgresql"
    ),
)


class Study(Base):
    __tablename__ = "studies"
    # A retried POST with the same Idempotency-Key finds the study the first one made.
    __table_args__ = (UniqueConstraint("team_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Which trainer runs its trials, so a trial is routed without reading the definition.
    trainer: Mapped[str] = mapped_column(String(40), default="numpy", server_default="numpy")
    # Who may run its trials: `any`, `workers` (and the local pool) or `agents`; a trial is
    # dispatched, or leased, without reading the definition.
    runs_on: Mapped[str] = mapped_column(String(8), default="any", server_default="any")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # What was submitted under that key: a retry must send the same study.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    definition: Mapped[dict[str, Any]]
    status: Mapped[StudyStatus] = mapped_column(_enum(StudyStatus), default=StudyStatus.RUNNING)
    budget_trials: Mapped[int]
    parallelism: Mapped[int]
    strategy_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The uploads its study file names by name, as resolved when it was submitted: ref ->
    # {id, version}. A later upload under the name changes nothing of this study.
    datasets: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    # When the study's `budget.timeout_s` runs out; a resumed study gets a new one.
    deadline_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    trials: Mapped[list[Trial]] = relationship(back_populates="study", passive_deletes=True)


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        # A grid point is claimed once per study: the database refuses a second claim.
        UniqueConstraint("study_id", "grid_index"),
        # Progress counts read its prefix; the best trial is its first row for the study's
        # complete trials, so polling a study never sorts its trials.
        Index("ix_trials_study_state_value", "study_id", "state", "value"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    number: Mapped[int]
    params: Mapped[dict[str, Any]]
    grid_index: Mapped[int | None]
    # A lost trial's config runs again as a new trial: `retry_of` names the lost one, and
    # `attempt` counts the runs of that config (1 for the first).
    retry_of: Mapped[int | None] = mapped_column(ForeignKey("trials.id", ondelete="SET NULL"))
    attempt: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    # Population-based training: the member this trial trains, its generation, and the trial
    # (by number) whose final state it starts from, with what it copied and changed.
    lineage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[TrialState] = mapped_column(_enum(TrialState), default=TrialState.QUEUED)
    reason: Mapped[str | None] = mapped_column(Text)
    # The last lines of the traceback of an exception that ended it (a few KB at most); loaded
    # only when asked for, since listings never show it.
    traceback: Mapped[str | None] = mapped_column(Text, deferred=True)
    values: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The objective's value, kept apart from `values` so the best trial is an ORDER BY.
    value: Mapped[float | None]
    worker: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    study: Mapped[Study] = relationship(back_populates="trials")


class TrialMetric(Base):
    """One report of a trial: its metrics at one epoch."""

    __tablename__ = "trial_metrics"
    __table_args__ = (UniqueConstraint("trial_id", "step"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]]


class Checkpoint(Base):
    """The latest training state a trial saved: its retry, if it is lost, resumes there."""

    __tablename__ = "checkpoints"
    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int]  # the last step the state covers
    size: Mapped[int]
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    saved_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrialWeights(Base):
    """A complete trial's trained model, as its trainer saved it, for download."""

    __tablename__ = "trial_weights"
    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    size: Mapped[int]
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    saved_at: Mapped[datetime] = mapped_column(default=utcnow)


class Preset(Base):
    __tablename__ = "presets"
    __table_args__ = (UniqueConstraint("team_id", "name", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int]
    visibility: Mapped[str] = mapped_column(String(8), default="team")
    config: Mapped[dict[str, Any]]
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="SET NULL"))
    trial_id: Mapped[int | None] = mapped_column(ForeignKey("trials.id", ondelete="SET NULL"))
    dataset_hash: Mapped[str | None] = mapped_column(String(64))
    values: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    engine_version: Mapped[str] = mapped_column(String(32))
    # The trial's trained model, copied: the preset keeps it after its study is deleted.
    weights: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    weights_size: Mapped[int | None]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainerOffer(Base):
    """A trainer a worker can run, as it announced it; `last_seen_at` says it is alive."""

    __tablename__ = "trainer_offers"
    __table_args__ = (UniqueConstraint("name", "worker"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[str] = mapped_column(String(100))
    # The trainer's config as a JSON schema: the API checks studies against it, importing nothing.
    config_schema: Mapped[dict[str, Any]]
    step_metrics: Mapped[list[str]] = mapped_column(JSON)
    final_metrics: Mapped[list[str]] = mapped_column(JSON)
    worker: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    last_seen_at: Mapped[datetime]
    # Set when the worker stops: no longer live, but its schema still judges new studies.
    withdrawn_at: Mapped[datetime | None]
    # An agent's offer is its team's alone (None: a worker's, every team's).
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), index=True
    )
    # False for an agent's plain function: no schema nor metrics to check a study against.
    declared: Mapped[bool] = mapped_column(default=True, server_default=true())
    # It saves and resumes its state (`Trainer.resumable`): what pbt needs.
    resumable: Mapped[bool] = mapped_column(default=False, server_default=false())
