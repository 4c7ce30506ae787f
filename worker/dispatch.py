"""Dispatchers: how queued trials reach `run_trial`. Celery on Redis, or a local process pool."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Protocol

from hpsearch.db.settings import get_settings
from hpsearch.worker.blas import pin_blas_threads
from hpsearch.worker.runner import run_trial
from hpsearch.worker.sweeper import Sweeper

log = logging.getLogger(__name__)


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the terminal's whole process group: the parent stops the pool itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Dispatcher(Protocol):
    def dispatch(self, trial_ids: Sequence[int]) -> None:
        """Have these queued trials run, each exactly once."""

    def shutdown(self) -> None:
        """Release the dispatcher's resources."""


class LocalPool:
    """The embedded dispatcher: a process pool in this process, refilling studies as trials end."""

    def __init__(
        self, workers: int, *, url: str | None = None, ignore_interrupts: bool = False
    ) -> None:
        """`ignore_interrupts`: the pool's processes ignore SIGINT, for a caller that handles
        Ctrl-C itself with `interrupt()`."""
        self.url = url
        self.interrupted = False
        pin_blas_threads()
        # spawn: a forked child would inherit this process's database connections.
        self.pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_ignore_interrupts if ignore_interrupts else None,
        )
        # Successors are submitted from a thread of their own: a done-callback runs on the
        # pool's manager thread, which must not submit to the pool it is managing.
        self.refiller = ThreadPoolExecutor(1, thread_name_prefix="refill")
        self.sweeper = Sweeper(self.dispatch, url).start()

    def dispatch(self, trial_ids: Sequence[int]) -> None:
        for trial_id in trial_ids:
            if self.interrupted:
                return
            future = self.pool.submit(run_trial, trial_id, url=self.url)
            future.add_done_callback(self._when_done)

    def _when_done(self, future: Future[list[int]]) -> None:
        # A trial that ends once the pool is stopping has nobody to dispatch its successors:
        # they stay queued in the database, for a resume or a sweep.
        with contextlib.suppress(RuntimeError):  # the refiller is shut down
            self.refiller.submit(self._after_trial, future)

    def _after_trial(self, future: Future[list[int]]) -> None:
        if self.interrupted:  # its process was ended on purpose
            return
        try:
            self.dispatch(future.result())
        except Exception:
            log.exception("a local trial process failed")

    def interrupt(self) -> None:
        """Stop now: end the trial processes mid-trial and dispatch nothing more. Their trials
        stay `running` in the database; the caller decides what becomes of them."""
        self.interrupted = True
        self.sweeper.stop()
        self.refiller.shutdown(wait=True, cancel_futures=True)
        # The executor has no public way to end its processes before Python 3.14.
        for process in list((self.pool._processes or {}).values()):
            process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def shutdown(self) -> None:
        if self.interrupted:
            return
        self.sweeper.stop()
        self.refiller.shutdown(wait=True, cancel_futures=True)
        self.pool.shutdown(wait=True, cancel_futures=True)


def make_dispatcher(workers: int, *, url: str | None = None) -> Dispatcher:
    """Celery when a broker URL is configured, else a local pool of `workers` processes."""
    if get_settings().broker_url:
        from hpsearch.worker.tasks import CeleryDispatcher  # imports Celery only where it is used

        return CeleryDispatcher()
    return LocalPool(workers, url=url)
