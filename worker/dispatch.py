"""Dispatchers: how queued trials reach `run_trial`. Celery on Redis, or a local process pool."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Protocol

from db.settings import get_settings
from worker.runner import run_trial
from worker.sweeper import Sweeper

log = logging.getLogger(__name__)

# BLAS libraries read these when they load: set before the pool's processes import NumPy, they
# keep N trial processes on N cores from each starting N threads.
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_blas_threads() -> None:
    """One BLAS thread per trial process, unless the environment already says otherwise."""
    for variable in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")


class Dispatcher(Protocol):
    def dispatch(self, trial_ids: Sequence[int]) -> None:
        """Have these queued trials run, each exactly once."""

    def shutdown(self) -> None:
        """Release the dispatcher's resources."""


class LocalPool:
    """The embedded dispatcher: a process pool in this process, refilling studies as trials end."""

    def __init__(self, workers: int, *, url: str | None = None) -> None:
        self.url = url
        pin_blas_threads()
        # spawn: a forked child would inherit this process's database connections.
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        # Successors are submitted from a thread of their own: a done-callback runs on the
        # pool's manager thread, which must not submit to the pool it is managing.
        self.refiller = ThreadPoolExecutor(1, thread_name_prefix="refill")
        self.sweeper = Sweeper(self.dispatch, url).start()

    def dispatch(self, trial_ids: Sequence[int]) -> None:
        for trial_id in trial_ids:
            future = self.pool.submit(run_trial, trial_id, url=self.url)
            future.add_done_callback(lambda done: self.refiller.submit(self._after_trial, done))

    def _after_trial(self, future: Future[list[int]]) -> None:
        try:
            self.dispatch(future.result())
        except Exception:
            log.exception("a local trial process failed")

    def shutdown(self) -> None:
        self.sweeper.stop()
        self.refiller.shutdown(wait=True, cancel_futures=True)
        self.pool.shutdown(wait=True, cancel_futures=True)


def make_dispatcher(workers: int, *, url: str | None = None) -> Dispatcher:
    """Celery when a broker URL is configured, else a local pool of `workers` processes."""
    if get_settings().broker_url:
        from worker.tasks import CeleryDispatcher  # imports Celery only where it is used

        return CeleryDispatcher()
    return LocalPool(workers, url=url)
