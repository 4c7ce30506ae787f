"""The embedded dispatcher: its signal to whoever shows a study's progress (`hpsearch run`),
and what its forked processes start with."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from sqlalchemy import event

from hpsearch.db import accounts, queries
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import Study, StudyStatus
from hpsearch.db.session import get_engine, session_scope
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from hpsearch.worker.dispatch import LocalPool
from tests.conftest import ROOT, tiny_study


def new_study(url: str, trials: int) -> int:
    """A study of `trials` tiny trials, one at a time, in a new database at `url`."""
    upgrade(url)
    with session_scope(url) as session:
        team = accounts.create_team(session, "alpha")
        definition = StudyDefinition.model_validate(
            tiny_study(budget={"trials": trials, "parallelism": 1})
        )
        return coordinator.create_study(session, team_id=team.id, definition=definition).id


def test_a_trial_ended_is_signalled_once_the_database_has_it(sqlite_url: str) -> None:
    study_id = new_study(sqlite_url, trials=1)
    pool = LocalPool(1, url=sqlite_url)
    try:
        assert not pool.trial_ended.is_set()
        assert pool.idle.is_set()
        coordinator.refill(study_id, dispatch=pool.dispatch, url=sqlite_url)
        assert not pool.idle.is_set()  # its process is still starting
        assert pool.trial_ended.wait(timeout=120)
        assert pool.idle.is_set()  # before the signal: the bar looks at once
        # What `hpsearch run` reads when woken: its one trial's end has ended the study.
        with session_scope(sqlite_url) as session:
            assert session.get_one(Study, study_id).status == StudyStatus.COMPLETE
    finally:
        pool.shutdown()


def test_a_trials_successors_are_routed_here_without_a_query(sqlite_url: str) -> None:
    study_id = new_study(sqlite_url, trials=3)
    routed: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("SELECT trials.id, studies.trainer"):  # `trainers_of`'s
            routed.append(statement)

    engine = get_engine(sqlite_url)
    event.listen(engine, "before_cursor_execute", count)
    pool = LocalPool(1, url=sqlite_url)
    try:
        coordinator.refill(study_id, dispatch=pool.dispatch, url=sqlite_url)
        while True:  # as `hpsearch run` watches: cleared before the look
            pool.trial_ended.clear()
            with session_scope(sqlite_url) as session:
                if session.get_one(Study, study_id).status != StudyStatus.RUNNING:
                    break
            assert pool.trial_ended.wait(timeout=120)
    finally:
        pool.shutdown()
        event.remove(engine, "before_cursor_execute", count)
    with session_scope(sqlite_url) as session:
        assert queries.study_progress(session, study_id).finished == 3
    assert len(routed) == 1  # the first trial's dispatch; its two successors went straight


# A process of `LocalPool(fork=True)` (`hpsearch run`'s) reports what it inherited, before it
# runs anything that would find it itself.
FORKED = """
import json, sys
from hpsearch.db.settings import get_settings
from hpsearch.worker import trainers
from hpsearch.worker.dispatch import LocalPool

def inherited():
    return {
        "trainers": trainers.installed.cache_info().currsize,
        "settings": get_settings.cache_info().currsize,
        "numpy.ma": "numpy.ma" in sys.modules,  # np.unique's, in a trial's first data split
    }

pool = LocalPool(1, url=sys.argv[1], fork=True)
try:
    print(json.dumps(pool.pool.submit(inherited).result(timeout=60)))
finally:
    pool.shutdown()
"""


def test_a_forked_pool_process_inherits_what_its_first_trial_would_load_itself(
    sqlite_url: str,
) -> None:
    # In a process of its own: a fork needs no other thread running, and pytest runs some.
    upgrade(sqlite_url)
    done = subprocess.run(
        [sys.executable, "-c", FORKED, sqlite_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    inherited = json.loads(done.stdout.splitlines()[-1])
    assert inherited == {"trainers": 1, "settings": 1, "numpy.ma": True}
