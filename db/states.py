"""A trial's states and a member's roles, apart from the tables: the agent (`hpsearch agent`)
judges how a trial ended, and the command line offers the roles, without loading SQLAlchemy."""

from __future__ import annotations

import enum


class TrialState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"


class Role(enum.StrEnum):
    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"
