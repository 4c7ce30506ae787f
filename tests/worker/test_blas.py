"""BLAS threads per trial process: what a trial process's OpenBLAS really runs with, read from
the library itself (as threadpoolctl does), not only the variables that should have set it."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from hpsearch.db.settings import get_settings
from hpsearch.worker import blas
from hpsearch.worker.blas import BLAS_THREAD_VARIABLES
from hpsearch.worker.dispatch import LocalPool
from tests.conftest import ROOT

GETTERS = (
    "scipy_openblas_get_num_threads64_",
    "openblas_get_num_threads64_",
    "openblas_get_num_threads",
)


def openblas_threads() -> int | None:
    """The thread count of the OpenBLAS this process loaded with NumPy; None if it has none."""
    import numpy  # noqa: F401 (loads the library)

    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    for path in paths:
        library = ctypes.CDLL(path)
        for name in GETTERS:
            if hasattr(library, name):
                return int(getattr(library, name)())
    return None


def report() -> tuple[str | None, int | None]:
    """Run in a pool process: its variable and its OpenBLAS's threads."""
    return os.environ.get("OPENBLAS_NUM_THREADS"), openblas_threads()


needs_openblas = pytest.mark.skipif(
    not sys.platform.startswith("linux") or openblas_threads() is None,
    reason="reads OpenBLAS through /proc/self/maps",
)
# One thread is what BLAS picks by itself on one core: only more cores tell pinned from not.
needs_cores = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")


@pytest.fixture
def clean_blas_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable in BLAS_THREAD_VARIABLES:  # restored after the test, as pinning sets them
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


@needs_openblas
@needs_cores
@pytest.mark.parametrize("configured", [None, "2"])
def test_a_local_pool_process_runs_with_the_configured_blas_threads(
    sqlite_url: str, clean_blas_env: pytest.MonkeyPatch, configured: str | None
) -> None:
    if configured:
        clean_blas_env.setenv("HPSEARCH_BLAS_THREADS", configured)
    get_settings.cache_clear()
    pool = LocalPool(1, url=sqlite_url)
    try:
        variable, threads = pool.pool.submit(report).result(timeout=120)
    finally:
        pool.shutdown()
    expected = int(configured or 1)  # 1 by default
    assert variable == str(expected)
    assert threads == min(expected, os.cpu_count() or 1)  # OpenBLAS caps it at the cores


@needs_openblas
@needs_cores
def test_the_cli_pins_blas_before_numpy_loads_so_a_forked_worker_inherits_it() -> None:
    # What `hpsearch worker` does: import the CLI (which loads NumPy), then Celery's prefork
    # pool forks the trial processes from it. A forked child keeps its parent's BLAS threads.
    probe = (
        "import os, hpsearch.cli.main\n"
        "from tests.worker.test_blas import openblas_threads\n"
        "if os.fork() == 0:\n"
        "    print(openblas_threads(), flush=True)\n"
        "    os._exit(0)\n"
        "os.wait()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARIABLES}
    env = {k: v for k, v in env.items() if not k.startswith("HPSEARCH_")}
    child = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "1"


def test_the_default_the_cli_pins_without_reading_the_settings_is_the_settings_default(
    clean_blas_env: pytest.MonkeyPatch,
) -> None:
    clean_blas_env.delenv(blas.SETTING, raising=False)
    get_settings.cache_clear()
    assert blas.DEFAULT_THREADS == get_settings().blas_threads
    blas.pin_blas_threads()
    assert {os.environ[v] for v in BLAS_THREAD_VARIABLES} == {str(blas.DEFAULT_THREADS)}
    clean_blas_env.setenv(blas.SETTING.lower(), "3")  # read as the settings read it
    get_settings.cache_clear()
    blas.pin_blas_threads()
    assert {os.environ[v] for v in BLAS_THREAD_VARIABLES} == {"3"}
    get_settings.cache_clear()
