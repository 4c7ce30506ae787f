"""BLAS threads per trial process. Imports no NumPy: it must run before NumPy loads."""

from __future__ import annotations

import os

from hpsearch.db.settings import get_settings

# BLAS libraries read these when they load: set before the pool's processes import NumPy, they
# keep N trial processes on N cores from each starting N threads.
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_blas_threads(threads: int | None = None) -> None:
    """Give the processes started from now on `threads` BLAS threads each (default: the
    HPSEARCH_BLAS_THREADS setting); 0 leaves the variables as the environment set them.

    It only reaches a process that loads NumPy after the call: spawned processes, and processes
    forked from one that had not loaded NumPy yet (hence its call at the top of
    `hpsearch/cli/main.py`).
    """
    threads = get_settings().blas_threads if threads is None else threads
    if threads:
        os.environ.update(dict.fromkeys(BLAS_THREAD_VARIABLES, str(threads)))
