"""Engines and transactions: the one place that opens database sessions."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, bindparam, create_engine, event, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, defer, sessionmaker

from hpsearch.db.models import Study
from hpsearch.db.outage import Outage
from hpsearch.db.settings import get_settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long `retrying` waits out a database that went away (a restart, a failover).
OUTAGE_S = 120.0
RETRY_DELAYS_S = (0.1, 0.25, 0.5, 1.0, 2.0)

_engines: dict[tuple[str, int, bool], Engine] = {}
_sessionmakers: dict[tuple[Engine, bool], sessionmaker[Session]] = {}
# The execution option of `session_scope(read_only=True)`'s connections.
_READ_ONLY = "hpsearch_read_only"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so that BEGIN IMMEDIATE below is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Every transaction that may write takes the write lock up front: a deferred one that
        # reads, then writes, can fail with "database is locked" when another process wrote in
        # between. A read-only one takes none: in WAL mode it reads a snapshot while others
        # write, rather than hold up every other process's writes (the trials' ends).
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def get_engine(url: str | None = None, *, pre_ping: bool = True) -> Engine:
    """The engine for `url` (default: settings), one per process so forked workers never share.

    `pre_ping`: a server's connections are tested before each use, so that a session never
    starts on one a database restart closed. A round trip per session: callers that retry on
    a lost connection anyway (`retrying`) go without. SQLite connections need no test.
    """
    url = url or get_settings().database_url
    sqlite = url.startswith("sqlite")
    key = (url, os.getpid(), pre_ping or sqlite)
    if key not in _engines:
        if sqlite:
            engine = create_engine(url, connect_args={"timeout": 30})
            _configure_sqlite(engine)
        else:
            engine = create_engine(url, pool_pre_ping=pre_ping, pool_size=5, max_overflow=5)
        _engines[key] = engine
    return _engines[key]


def dispose_engines() -> None:
    """Close this process's pooled connections now: the last one to an SQLite file writes its
    WAL back into the file, which is then whole on its own."""
    for (_, pid, _), engine in _engines.items():
        if pid == os.getpid():
            engine.dispose()


@contextmanager
def session_scope(
    url: str | None = None, *, pre_ping: bool = True, read_only: bool = False
) -> Iterator[Session]:
    """A session that commits on success, rolls back on error and always closes; `pre_ping`
    as in `get_engine`. `read_only`: a session that only reads, which on SQLite takes no
    write lock (it must not write: its write could fail at once, as "database is locked")."""
    engine = get_engine(url, pre_ping=pre_ping)
    if (engine, read_only) not in _sessionmakers:
        bind = engine.execution_options(**{_READ_ONLY: True}) if read_only else engine
        _sessionmakers[engine, read_only] = sessionmaker(bind, expire_on_commit=False)
    session = _sessionmakers[engine, read_only]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def unreachable(exc: BaseException) -> bool:
    """True when `exc` says the database could not be reached (stopped, restarting, a
    connection it dropped, no pooled connection free in time) rather than that a statement
    failed: the same work may succeed later."""
    if isinstance(exc, PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and (
        isinstance(exc, OperationalError) or exc.connection_invalidated
    )


def retrying(
    work: Callable[[Session], T], url: str | None = None, *, within_s: float = OUTAGE_S
) -> T:
    """`work(session)` in a transaction of its own, run again while the database cannot be
    reached, for up to `within_s`; then its error is raised.

    For the writes a running trial cannot do without: a database restart must cost the trial a
    pause, not its result. `work` must be safe to run again after a failed attempt, which a
    rolled-back transaction is.

    Its sessions skip the connection test (`pre_ping`): a connection a restart closed fails
    the first attempt, which invalidates the pool (SQLAlchemy does on a disconnect error),
    and the next attempt connects afresh.
    """
    deadline = time.monotonic() + within_s
    attempt = 0
    while True:
        try:
            with session_scope(url, pre_ping=False) as session:
                result = work(session)
        except DBAPIError as exc:
            if not unreachable(exc) or time.monotonic() >= deadline:
                raise
            _RETRIED_WRITES.failed(exc)
            time.sleep(RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)])
            attempt += 1
        else:
            _RETRIED_WRITES.succeeded()
            return result


# This process's writes that wait for the database: a line as an outage begins and one as it
# ends, not one per attempt.
_RETRIED_WRITES = Outage("database (retried writes)", log)


# Built once (the defer option is costly to build per call); the row lock on PostgreSQL only.
_LOCK = select(Study).options(defer(Study.definition)).where(Study.id == bindparam("study"))
_LOCK_FOR_UPDATE = _LOCK.with_for_update()


def lock_study(session: Session, study_id: int) -> Study | None:
    """The study, locked for the rest of the transaction (row lock; SQLite's is database-wide)."""
    # The definition is the bulk of the row and rarely needed: it loads on first access.
    postgresql = session.get_bind().dialect.name == "postgresql"
    statement = _LOCK_FOR_UPDATE if postgresql else _LOCK
    return session.scalars(statement, {"study": study_id}).one_or_none()
