"""BLAS threads per trial process. Imports no NumPy: it must run before NumPy loads."""

from __future__ import annotations

import os

# `Settings.blas_threads`'s default (tests/worker/test_blas.py checks they agree).
DEFAULT_THREADS = 1
SETTING = "HPSEARCH_BLAS_THREADS"

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
    if threads is None:
        # Unset, the setting is its default: pydantic-settings (a tenth of a second to import,
        # on every `hpsearch` command's start) loads only to read a value that was set.
        if any(name.upper() == SETTING for name in os.environ):
            from hpsearch.db.settings import get_settings

            threads = get_settings().blas_threads
        else:
            threads = DEFAULT_THREADS
    if threads:
        os.environ.update(dict.fromkeys(BLAS_THREAD_VARIABLES, str(threads)))
