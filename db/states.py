"""A trial's states, apart from the tables: the agent (`hpsearch agent`) judges how a trial
ended on the user's machine without loading SQLAlchemy."""

from __future__ import annotations

import enum


class TrialState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
