"""The sweeper: what keeps a study from waiting forever on a trial nobody runs.

Each sweep ends running trials whose worker stopped heartbeating as `failed: lost` (the
coordinator then runs their config again, up to the study's `budget.max_retries`), ends studies
past their deadline, and dispatches again trials queued long ago that no worker took (their
message may have died with the broker, or never reached it). Every worker process runs one, in
a thread: there is no extra service to start, and sweeps from several workers at once are
harmless, because each step is one conditional UPDATE and claiming a trial twice is refused.

A worker whose connection to the broker comes back re-sends at once the queued trials sent
before it was lost (`resend_queued`, from `hpsearch.worker.tasks`), rather than waiting for a sweep.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import datetime, timedelta

from hpsearch.db import queries
from hpsearch.db.models import utcnow
from hpsearch.db.outage import Outage
from hpsearch.db.session import session_scope, unreachable
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from hpsearch.search.coordinator import Dispatch
from hpsearch.worker.trainers import Offers

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
    stale = resend_queued(dispatch, now - timedelta(seconds=settings.requeue_after_s), url)
    return dispatched + stale


def resend_queued(dispatch: Dispatch, sent_before: datetime, url: str | None = None) -> list[int]:
    """Dispatch again the queued trials of running studies last sent before `sent_before`;
    their ids.

    Their queue time is renewed in the same UPDATE: whoever re-sends next with a cut-off
    before now (another sweeper, another worker back from the same broker outage) leaves
    them alone, so each is re-sent once per period or outage, however many workers look.
    """
    with session_scope(url) as session:
        stale = queries.requeue_stale(session, sent_before)
    if stale:
        log.warning("dispatching %d queued trials again: %s", len(stale), stale)
        dispatch(stale)
    return stale


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
        self.offer_first = True
        self.database = Outage("database (sweeps)", log)

    def start(self, *, offer_first: bool = True) -> Sweeper:
        """Start sweeping. `offer_first`: announce this process's trainers before returning,
        so that no study is judged against an offer not yet made; else as the thread starts,
        for a caller that judges its studies itself (`hpsearch run`)."""
        self.offer_first = offer_first
        if offer_first:
            self.offers.start()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.offers.stop()

    def _run(self) -> None:
        if not self.offer_first:
            self.offers.start()
        reachable_since: float | None = -math.inf  # None: the last sweep failed
        while not self.stopped.wait(get_settings().sweep_every_s):
            now, lost_after_s = time.monotonic(), get_settings().lost_after_s
            trusted = reachable_since is not None and now - reachable_since >= lost_after_s
            try:
                sweep(self.dispatch, self.url, find_lost=trusted)
            except Exception as exc:  # a database that is away now may be back at the next sweep
                if unreachable(exc):  # one line per outage, not a stack trace per sweep
                    self.database.failed(exc)
                else:
                    log.warning("sweep failed", exc_info=True)
                reachable_since = None
            else:
                self.database.succeeded()
                reachable_since = now if reachable_since is None else reachable_since
            self.offers.refresh()
