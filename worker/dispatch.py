"""Dispatchers: how queued trials reach `run_trial`. Celery on Redis, or a local process pool."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Protocol

from hpsearch.db import queries
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from hpsearch.worker import trainers
from hpsearch.worker.blas import pin_blas_threads
from hpsearch.worker.engine import kernels
from hpsearch.worker.runner import run_trial, worker_name_of
from hpsearch.worker.sweeper import Sweeper

log = logging.getLogger(__name__)


# What ends `hpsearch run` as Ctrl-C does: the runner's to handle, not its trial processes'.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _start_trial_process(ignore_interrupts: bool) -> None:
    """A pool process's start: the engine's kernels compile (or load) here, not in the clock of
    its first trial."""
    if ignore_interrupts:
        # Ctrl-C reaches the terminal's whole process group (and a closed terminal's SIGHUP,
        # a `kill` of the group's SIGTERM): the parent stops the pool itself.
        for stop in STOP_SIGNALS:
            signal.signal(stop, signal.SIG_IGN)
    kernels.load()


class Dispatcher(Protocol):
    def dispatch(self, trial_ids: Sequence[int]) -> None:
        """Have these queued trials run, each exactly once."""

    def shutdown(self) -> None:
        """Release the dispatcher's resources."""


class LocalPool:
    """The embedded dispatcher: a process pool in this process, refilling studies as trials end.

    A trial process that dies (a trainer's native code crashed it, or it was killed) breaks
    the whole executor, which ends its other processes too: the pool then starts a new one,
    ends the trials that were running in the old one as lost at once (their studies retry
    them, as the sweeper would after `lost_after_s`), and dispatches again those not started.
    """

    def __init__(
        self,
        workers: int,
        *,
        url: str | None = None,
        ignore_interrupts: bool = False,
        fork: bool = False,
        offer_first: bool = True,
    ) -> None:
        """`ignore_interrupts`: the pool's processes ignore SIGINT, SIGTERM and SIGHUP, for a
        caller that handles them itself with `interrupt()`.

        `fork`: start the processes now by forking this one (`hpsearch run`, which has loaded
        the kernels): they start with everything imported and loaded (the trainers installed
        too), rather than each importing it all again (about a second) and loading the kernels
        (half a second). Only on Linux and while this process runs no other thread (a forked
        child could inherit a lock one held); a pool started again after a process died spawns,
        as threads run by then.

        `offer_first`: as `Sweeper.start`'s; false for `hpsearch run`, whose first trials need
        not wait for it.
        """
        self.url = url
        self.interrupted = False
        # Set once each trial has ended and its successors were dispatched: for a caller that
        # waits on the study's progress (`hpsearch run`'s bar) rather than polling alone.
        self.trial_ended = threading.Event()
        # Set while no trial this pool was given runs (ended with its successors dispatched).
        self.idle = threading.Event()
        self.idle.set()
        self.running = 0
        self.counting = threading.Lock()
        pin_blas_threads()
        initializer = partial(_start_trial_process, ignore_interrupts)
        # spawn: a process forked once threads run may inherit a lock one of them held.
        self.make_pool = partial(
            ProcessPoolExecutor,
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=initializer,
        )
        if fork and sys.platform == "linux" and threading.active_count() == 1:
            # Read once here, before the fork, rather than in each process: the installed
            # trainers (every package's entry points, the plugins imported: about 20 ms) and the
            # settings (pydantic-settings reading the environment: about 10 ms).
            trainers.installed()
            get_settings()
            self.pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("fork"), initializer=initializer
            )
            # Forks every process now, before the executor's and this pool's threads start.
            self.pool.submit(int)
        else:
            self.pool = self.make_pool()
        self.pids: set[int] = set()  # the current pool's processes, for when it breaks
        self.replacing = threading.Lock()  # the refiller and the sweeper may both find it broken
        # Successors are submitted from a thread of their own: a done-callback runs on the
        # pool's manager thread, which must not submit to the pool it is managing.
        self.refiller = ThreadPoolExecutor(1, thread_name_prefix="refill")
        self.sweeper = Sweeper(self.dispatch, url).start(offer_first=offer_first)

    def dispatch(self, trial_ids: Sequence[int]) -> None:
        self._submit(self._runnable(trial_ids))

    def _submit(self, trial_ids: Sequence[int]) -> None:
        for trial_id in trial_ids:
            if self.interrupted:
                return
            pool = self.pool
            try:
                future = pool.submit(run_trial, trial_id, url=self.url)
            except BrokenProcessPool:  # found broken before its trials' callbacks ran
                self._replace(pool)
                pool = self.pool
                future = pool.submit(run_trial, trial_id, url=self.url)
            self.pids.update(pool._processes or {})  # no public way to know them
            self._count(1)
            future.add_done_callback(partial(self._when_done, trial_id, pool))

    def _runnable(self, trial_ids: Sequence[int]) -> list[int]:
        """The trials this pool can run: not of a study run by agents alone, and of a trainer
        installed here. The others wait queued for an agent's lease (`hpsearch agent`), which
        is how a study of a trainer only its agents have is served by `hpsearch serve`."""
        if not trial_ids:
            return []
        with session_scope(self.url, read_only=True) as session:
            routed = queries.trainers_of(session, trial_ids)
        here = trainers.installed()  # what `run_trial` can load here
        return [trial_id for trial_id in trial_ids if routed.get(trial_id) in here]

    def _when_done(
        self, trial_id: int, pool: ProcessPoolExecutor, future: Future[list[int]]
    ) -> None:
        # A trial that ends once the pool is stopping has nobody to dispatch its successors:
        # they stay queued in the database, for a resume or a sweep.
        with contextlib.suppress(RuntimeError):  # the refiller is shut down
            self.refiller.submit(self._after_trial, trial_id, pool, future)

    def _after_trial(
        self, trial_id: int, pool: ProcessPoolExecutor, future: Future[list[int]]
    ) -> None:
        if self.interrupted:  # its process was ended on purpose
            return
        try:
            try:
                successors = future.result()
            except BrokenProcessPool:
                self._replace(pool)
                # Queued still if it never started: it runs now. If it was running, it is
                # lost now, and its claim is refused.
                successors = [trial_id]
            # Of the study of a trial that ran here, so routed here too: no query to find out.
            self._submit(successors)
        except Exception:
            log.exception("a local trial process failed")
        finally:
            self._count(-1)  # after its successors were dispatched: never idle in between
            self.trial_ended.set()

    def _count(self, change: int) -> None:
        with self.counting:
            self.running += change
            if self.running:
                self.idle.clear()
            else:
                self.idle.set()

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Start a new executor in place of `broken` (once, however many trials found it) and
        end the trials that were running in its processes as lost."""
        with self.replacing:
            if self.pool is not broken:
                return
            dead, self.pids = [worker_name_of(pid) for pid in self.pids], set()
            self.pool = self.make_pool()
            with session_scope(self.url) as session:
                studies = queries.mark_lost(session, workers=dead)
        log.warning(
            "a trial process died; its pool was restarted, and studies %s retry the trials"
            " that ran there",
            studies,
        )
        for study_id in studies:
            coordinator.refill(study_id, dispatch=self.dispatch, url=self.url)

    def interrupt(self) -> None:
        """Stop now: end the trial processes mid-trial and dispatch nothing more. Their trials
        stay `running` in the database; the caller decides what becomes of them."""
        self.interrupted = True
        self.sweeper.stop()
        self.refiller.shutdown(wait=True, cancel_futures=True)
        # The executor has no public way to end its processes before Python 3.14; they may
        # ignore SIGTERM (`ignore_interrupts`).
        for process in list((self.pool._processes or {}).values()):
            process.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def shutdown(self) -> None:
        if self.interrupted:
            return
        self.sweeper.stop()
        self.refiller.shutdown(wait=True, cancel_futures=True)
        self.pool.shutdown(wait=True, cancel_futures=True)


class InProcess:
    """The dispatcher of `hpsearch.optimize`: trials run in this process, the caller's, whose
    trainer may be one no other process can import (a function defined in a notebook).

    With one thread, trials run on the caller's own thread inside `run`: as in a pool's process,
    a trainer that does not stop when its study ends is interrupted there. With several, they
    run on threads of their own, where Python delivers no signal: only `report` stops a trial.
    This process is never killed for a trainer that does not stop.
    """

    def __init__(self, threads: int, *, url: str | None = None) -> None:
        self.url = url
        self.threads = threads
        self.queued: deque[int] = deque()
        self.running = 0
        self.stopping = False
        self.changed = threading.Condition()
        self.workers: list[threading.Thread] = []

    def dispatch(self, trial_ids: Sequence[int]) -> None:
        with self.changed:
            self.queued.extend(trial_ids)
            self.changed.notify_all()

    def run(self, tick: Callable[[], None], every_s: float = 0.25) -> None:
        """Run the dispatched trials and those queued after them until none is left, calling
        `tick` as trials end (and every `every_s` while they run on threads)."""
        if self.threads == 1:
            self._work(tick)
            return
        self.workers = [
            threading.Thread(target=self._work, name=f"trial-{i}", daemon=True)
            for i in range(self.threads)
        ]
        for worker in self.workers:
            worker.start()
        while True:
            with self.changed:
                if not (self.queued or self.running):
                    return
                self.changed.wait(every_s)
            tick()

    def _work(self, tick: Callable[[], None] | None = None) -> None:
        while (trial_id := self._next()) is not None:
            successors: list[int] = []
            try:
                successors = run_trial(trial_id, url=self.url, in_caller=True)
            finally:
                with self.changed:
                    self.running -= 1
                    self.dispatch(successors)
            if tick is not None:
                tick()

    def _next(self) -> int | None:
        """The next trial to run; None once nothing is queued nor running (or on `stop`)."""
        with self.changed:
            while not self.stopping and not self.queued and self.running:
                self.changed.wait()
            if self.stopping or not self.queued:
                return None
            self.running += 1
            return self.queued.popleft()

    def stop(self) -> None:
        """Start no trial more; those running go on (see `join`)."""
        with self.changed:
            self.stopping = True
            self.changed.notify_all()

    def join(self) -> None:
        """Wait for the trials running on threads to end: they stop at their next `report` once
        their study no longer runs."""
        for worker in self.workers:
            worker.join()


def make_dispatcher(workers: int, *, url: str | None = None) -> Dispatcher:
    """Celery when a broker URL is configured, else a local pool of `workers` processes."""
    if get_settings().broker_url:
        from hpsearch.worker.tasks import CeleryDispatcher  # imports Celery only where it is used

        return CeleryDispatcher()
    return LocalPool(workers, url=url)
