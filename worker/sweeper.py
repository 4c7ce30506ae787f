"""The sweeper: what keeps a study from waiting forever on a trial nobody runs.

Each sweep ends running trials whose worker stopped heartbeating as `failed: lost` (the
coordinator then runs their config again, up to the study's `budget.max_retries`), ends studies
past their deadline, and dispatches again trials queued long ago that no worker took (their
message may have died with the broker). Every worker process runs one, in a thread: there is no
extra service to start, and sweeps from several workers at once are harmless, because each step
is one conditional UPDATE and claiming a trial twice is refused.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import timedelta

from db import queries
from db.models import utcnow
from db.session import session_scope
from db.settings import get_settings
from search import coordinator
from search.coordinator import Dispatch
from worker.trainers import Offers

log = logging.getLogger(__name__)


def sweep(dispatch: Dispatch, url: str | None = None, *, find_lost: bool = True) -> list[int]:
    """One sweep; the trials it dispatched (retries, and stale queued trials again).

    `find_lost=False` leaves silent trials alone this time (see `Sweeper`)."""
    settings = get_settings()
    now = utcnow()
    with session_scope(url) as session:
        studies = []
        if find_lost:
            studies = queries.mark_lost(session, now - timedelta(seconds=settings.lost_after_s))
        studies = sorted(set(studies) | set(queries.expired_studies(session, now)))
    dispatched: list[int] = []
    for study_id in studies:
        dispatched += coordinator.refill(study_id, dispatch=dispatch, url=url)
    with session_scope(url) as session:
        stale = queries.requeue_stale(session, now - timedelta(seconds=settings.requeue_after_s))
    if stale:
        log.warning("dispatching %d trials again that no worker took: %s", len(stale), stale)
        dispatch(stale)
    return dispatched + stale


class Sweeper:
    """Sweeps every `sweep_every_s` from a daemon thread until stopped.

    After a sweep failed (the database was away), it calls no trial lost until the database
    has answered for `lost_after_s`: no heartbeat could be written during the outage either,
    and the workers need that long to show they are alive before their trials count as lost.
    """

    def __init__(self, dispatch: Dispatch, url: str | None = None) -> None:
        self.dispatch, self.url = dispatch, url
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sweeper", daemon=True)
        # The trainers this process runs are offered while it sweeps, and no longer.
        self.offers = Offers(url)

    def start(self) -> Sweeper:
        try:
            self.offers.announce()  # before any study can be judged against them
        except Exception:  # the database is away: the first sweep announces them
            log.warning("announcing this process's trainers failed", exc_info=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        try:
            self.offers.withdraw()
        except Exception:  # they stop counting as live after `lost_after_s` anyway
            log.warning("withdrawing this process's trainers failed", exc_info=True)

    def _run(self) -> None:
        reachable_since: float | None = -math.inf  # None: the last sweep failed
        while not self.stopped.wait(get_settings().sweep_every_s):
            now, lost_after_s = time.monotonic(), get_settings().lost_after_s
            trusted = reachable_since is not None and now - reachable_since >= lost_after_s
            try:
                sweep(self.dispatch, self.url, find_lost=trusted)
            except Exception:  # a database that is away now may be back at the next sweep
                log.warning("sweep failed", exc_info=True)
                reachable_since = None
            else:
                reachable_since = now if reachable_since is None else reachable_since
            self._keep_offer()

    def _keep_offer(self) -> None:
        try:
            self.offers.keep_alive()
        except Exception:  # the sweep says when the database is away; this would repeat it
            log.debug("keeping this process's trainer offer alive failed", exc_info=True)
