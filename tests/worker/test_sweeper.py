"""The sweeper on a real database: lost trials are failed and run again up to the retry limit,
studies past their deadline end, queued trials nobody took are dispatched again."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from hpsearch.db import queries
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import Study, StudyStatus, Trial, TrialState, utcnow
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from hpsearch.worker import sweeper
from hpsearch.worker.sweeper import sweep
from tests.search.test_coordinator import Recorder, finish, new_study


@pytest.fixture(autouse=True)
def quick_settings(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPSEARCH_LOST_AFTER_S", "30")
    monkeypatch.setenv("HPSEARCH_REQUEUE_AFTER_S", "300")
    get_settings.cache_clear()


def start(url: str, **overrides: object) -> tuple[int, list[int]]:
    study_id = new_study(url, **overrides)
    sent = Recorder()
    coordinator.refill(study_id, dispatch=sent, url=url)
    return study_id, sent.sent


def claim_and_go_silent(url: str, trial_id: int, seconds: float = 60) -> None:
    """A worker takes the trial, then dies: its last heartbeat ages."""
    with session_scope(url) as session:
        assert queries.claim_trial(session, trial_id, "doomed") is not None
        session.execute(
            update(Trial)
            .where(Trial.id == trial_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def trial(url: str, trial_id: int) -> Trial:
    with session_scope(url) as session:
        return session.get_one(Trial, trial_id)


def test_a_silent_trial_is_lost_and_its_config_runs_again(sqlite_url: str) -> None:
    study_id, (first, second) = start(sqlite_url, budget={"trials": 4, "parallelism": 2})
    claim_and_go_silent(sqlite_url, first)
    claim_and_go_silent(sqlite_url, second, seconds=5)  # heartbeating lately: alive
    sent = Recorder()
    dispatched = sweep(sent, sqlite_url)
    lost = trial(sqlite_url, first)
    assert (lost.state, lost.reason) == (TrialState.FAILED, "lost")
    assert trial(sqlite_url, second).state == TrialState.RUNNING
    (retry_id,) = dispatched
    assert sent.sent == [retry_id]
    retry = trial(sqlite_url, retry_id)
    assert retry.params == lost.params and retry.retry_of == first and retry.attempt == 2
    assert retry.state == TrialState.QUEUED
    assert sweep(Recorder(), sqlite_url) == []  # nothing more to do


def test_a_config_runs_at_most_max_retries_more_times(sqlite_url: str) -> None:
    study_id, (first,) = start(sqlite_url, budget={"trials": 5, "parallelism": 1, "max_retries": 2})
    runs = [first]
    for _ in range(3):
        claim_and_go_silent(sqlite_url, runs[-1])
        dispatched = sweep(Recorder(), sqlite_url)
        runs += dispatched
    attempts = [(trial(sqlite_url, t).attempt, trial(sqlite_url, t).reason) for t in runs]
    # Three runs of the config, all lost; then the strategy's next config, not a fourth run.
    assert attempts[:3] == [(1, "lost"), (2, "lost"), (3, "lost")]
    assert len(runs) == 4 and trial(sqlite_url, runs[3]).retry_of is None
    assert trial(sqlite_url, runs[3]).params != trial(sqlite_url, first).params


def run_to_the_end(url: str, study_id: int, pending: list[int]) -> queries.Progress:
    """Finish trials as they come until the study queues no more; its progress then."""
    while pending:
        finish(url, pending)
        with session_scope(url) as session:
            pending = coordinator.queue_next(session, study_id)
    with session_scope(url) as session:
        assert session.get_one(Study, study_id).status == StudyStatus.COMPLETE
        return queries.study_progress(session, study_id)


def test_a_lost_trial_run_again_takes_no_budget_so_every_config_still_runs(
    sqlite_url: str,
) -> None:
    # The whole budget is queued when the first trial dies: its retry must still find room.
    study_id, (first, second) = start(sqlite_url, budget={"trials": 2, "parallelism": 2})
    claim_and_go_silent(sqlite_url, first)
    (retry,) = sweep(Recorder(), sqlite_url)
    assert trial(sqlite_url, retry).retry_of == first
    progress = run_to_the_end(sqlite_url, study_id, [second, retry])
    assert progress.by_state == {"failed": 1, "complete": 2}
    assert progress.finished == 2  # the budget: the lost trial's place went to its retry
    with session_scope(sqlite_url) as session:  # and so says the studies list
        assert queries.tallies(session, [study_id])[study_id].finished == 2


def test_a_lost_trial_out_of_retries_counts_in_the_budget(sqlite_url: str) -> None:
    study_id, (first,) = start(sqlite_url, budget={"trials": 3, "parallelism": 1, "max_retries": 0})
    claim_and_go_silent(sqlite_url, first)
    (following,) = sweep(Recorder(), sqlite_url)
    assert trial(sqlite_url, following).retry_of is None  # the strategy's next config
    progress = run_to_the_end(sqlite_url, study_id, [following])
    assert progress.by_state == {"failed": 1, "complete": 2}
    assert progress.finished == 3


def test_a_study_past_its_deadline_times_out_and_resumes_with_a_new_one(
    sqlite_url: str,
) -> None:
    study_id, queued = start(sqlite_url, budget={"trials": 4, "parallelism": 2, "timeout_s": 60})
    with session_scope(sqlite_url) as session:
        session.execute(
            update(Study)
            .where(Study.id == study_id)
            .values(deadline_at=utcnow() - timedelta(seconds=1))
        )
    sweep(Recorder(), sqlite_url)
    with session_scope(sqlite_url) as session:
        assert session.get_one(Study, study_id).status == StudyStatus.TIMED_OUT
    assert {(trial(sqlite_url, t).state, trial(sqlite_url, t).reason) for t in queued} == {
        (TrialState.FAILED, "timeout")
    }
    with session_scope(sqlite_url) as session:
        again = coordinator.resume_study(session, study_id)
        study = session.get_one(Study, study_id)
        assert study.status == StudyStatus.RUNNING
        assert study.deadline_at is not None and study.deadline_at > utcnow() + timedelta(
            seconds=50
        )
    assert len(again) == 2


def test_queued_trials_nobody_took_are_dispatched_again_once_per_period(sqlite_url: str) -> None:
    study_id, (first, second) = start(sqlite_url, budget={"trials": 4, "parallelism": 2})
    with session_scope(sqlite_url) as session:
        session.execute(
            update(Trial)
            .where(Trial.id == first)
            .values(queued_at=utcnow() - timedelta(seconds=600))
        )
    sent = Recorder()
    assert sweep(sent, sqlite_url) == [first] and sent.sent == [first]
    assert sweep(Recorder(), sqlite_url) == []  # its queue time was renewed
    with session_scope(sqlite_url) as session:  # dispatching twice never runs it twice
        assert queries.claim_trial(session, first, "w1") is not None
        assert queries.claim_trial(session, first, "w2") is None


def test_after_an_outage_no_trial_is_lost_until_workers_could_heartbeat_again(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(sqlite_url)  # the sweeper offers this process's trainers there
    monkeypatch.setenv("HPSEARCH_SWEEP_EVERY_S", "0.01")
    monkeypatch.setenv("HPSEARCH_LOST_AFTER_S", "0.3")
    get_settings.cache_clear()
    calls: list[tuple[float, bool]] = []

    def sweep_with_an_outage(_dispatch: object, _url: object = None, *, find_lost: bool) -> list:
        calls.append((time.monotonic(), find_lost))
        if len(calls) in (2, 3):
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return []

    monkeypatch.setattr(sweeper, "sweep", sweep_with_an_outage)
    with caplog.at_level(logging.WARNING, logger=sweeper.__name__):
        running = sweeper.Sweeper(Recorder()).start()
        deadline = time.monotonic() + 30
        while (not calls or calls[-1][0] - calls[0][0] < 1.0) and time.monotonic() < deadline:
            time.sleep(0.05)
        running.stop()
    # Two failed sweeps, one outage: a line as it begins, one as it ends, no stack trace.
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 2 and not any(r.exc_info for r in caplog.records), logged
    assert logged[0].startswith("database (sweeps) unreachable: OperationalError"), logged
    assert logged[1].endswith("(2 requests failed)"), logged

    finds = [find_lost for _, find_lost in calls]
    assert finds[:4] == [True, True, False, False], "before, during and just after the outage"
    back_at = calls[3][0]
    first_again = finds.index(True, 4)
    assert calls[first_again][0] - back_at >= 0.25  # lost_after_s, give or take a tick
    assert all(finds[first_again:]), finds


def test_workers_back_from_one_broker_outage_re_send_each_trial_once(sqlite_url: str) -> None:
    study_id, queued = start(sqlite_url, budget={"trials": 4, "parallelism": 2})
    lost_at = utcnow()  # the broker went away: the trials' messages may be gone with it
    first_back, second_back = Recorder(), Recorder()
    assert sweeper.resend_queued(first_back, lost_at, sqlite_url) == queued
    # Another worker that lost its connection in the same outage, back a moment later.
    assert sweeper.resend_queued(second_back, lost_at, sqlite_url) == []
    assert first_back.sent == queued and second_back.sent == []


def test_a_trial_whose_send_failed_goes_at_the_next_sweep(sqlite_url: str) -> None:
    _, (first, _) = start(sqlite_url, budget={"trials": 4, "parallelism": 2})
    due = utcnow() - timedelta(seconds=get_settings().requeue_after_s + 1)
    with session_scope(sqlite_url) as session:
        queries.mark_unsent(session, [first], due)
    sent = Recorder()
    assert sweep(sent, sqlite_url) == [first] and sent.sent == [first]  # not 300 s later
    assert sweep(Recorder(), sqlite_url) == []  # sent once
