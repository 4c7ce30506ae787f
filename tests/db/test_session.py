"""`retrying`: a transaction run again while the database is away, and only then."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from hpsearch.db import session as db_session
from hpsearch.db.migrate import upgrade
from hpsearch.db.session import retrying


def away() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("connection refused"))


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_session.time, "sleep", lambda _: None)


def test_work_runs_again_until_the_database_answers(sqlite_url: str) -> None:
    attempts: list[Session] = []

    def work(session: Session) -> int:
        attempts.append(session)
        if len(attempts) < 3:
            raise away()
        return 42

    assert retrying(work, sqlite_url) == 42
    assert len(attempts) == 3
    assert len(set(map(id, attempts))) == 3, "each attempt has a transaction of its own"


def test_an_error_of_the_work_itself_is_not_retried(sqlite_url: str) -> None:
    attempts = []

    def work(_: Session) -> None:
        attempts.append(1)
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        retrying(work, sqlite_url)
    assert len(attempts) == 1


def test_an_outage_longer_than_the_limit_raises(sqlite_url: str) -> None:
    attempts = []

    def work(_: Session) -> None:
        attempts.append(1)
        raise away()

    with pytest.raises(OperationalError):
        retrying(work, sqlite_url, within_s=0)
    assert len(attempts) == 1


@pytest.mark.parametrize("read_only", [True, False])
def test_only_a_session_that_may_write_holds_sqlites_write_lock(
    sqlite_url: str, read_only: bool
) -> None:
    # `hpsearch run`'s progress reads must not hold up its trial processes' writes.
    upgrade(sqlite_url)
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0)
    other.isolation_level = None  # our own BEGIN, as the engine's connections do
    with db_session.session_scope(sqlite_url, read_only=read_only) as session:
        assert session.execute(text("SELECT count(*) FROM studies")).scalar() == 0
        if read_only:
            other.execute("BEGIN IMMEDIATE")  # the write lock is free meanwhile
            other.execute("ROLLBACK")
        else:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
    other.close()
