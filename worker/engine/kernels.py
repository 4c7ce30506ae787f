"""Compiled element-wise kernels, for updates that NumPy can only do in many passes.

An optimizer's update is a few multiplies, adds, a square root and a divide per parameter.
NumPy runs each as its own pass over the whole vector; a compiled loop does them all in one,
vectorised (numba, on this machine's SIMD). The arithmetic is IEEE as written: no fast-math,
so results do not depend on the machine's vector width. ``error_model="numpy"`` lets a
division by zero give inf as NumPy's does, rather than raise, and so lets the loop vectorise.

numba is imported on first use and the kernels compile then (about 0.3 s, cached on disk for
the next process: about 0.1 s), so a process that never calls one pays nothing. A process that
trains trials calls `load` as it starts instead: a trial's `train_seconds` must not count it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

Array = np.ndarray


def _adam_update(
    w: Array,
    g: Array,
    m: Array,
    v: Array,
    l2: float,
    shrink: float,
    beta1: float,
    rest1: float,
    beta2: float,
    rest2: float,
    step: float,
    eps: float,
) -> None:
    for i in range(w.shape[0]):
        gi = g[i] + l2 * w[i] if l2 else g[i]
        mi = beta1 * m[i] + rest1 * gi
        vi = beta2 * v[i] + rest2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        w[i] = shrink * w[i] - step * mi / (np.sqrt(vi) + eps)


def _signature(dtype: str) -> str:
    return f"void({', '.join([f'{dtype}[::1]'] * 4 + [dtype] * 8)})"


@functools.cache
def adam_update() -> Callable[..., None]:
    """Adam's whole step on contiguous float32 or float64 vectors, one pass, updating w, m
    and v in place (g is only read): with dᵢ = gᵢ + l2 wᵢ,

    mᵢ ← β1 mᵢ + (1 − β1) dᵢ;  vᵢ ← β2 vᵢ + (1 − β2) dᵢ²;  wᵢ ← shrink wᵢ − step mᵢ / (√vᵢ + eps)

    called as ``(w, g, m, v, l2, shrink, β1, 1 − β1, β2, 1 − β2, step, eps)`` with every
    scalar of the vectors' dtype (`Adam` folds the bias correction into step and eps).
    """
    import numba

    _register_without_blas()

    def compiled(cache: bool) -> Callable[..., None]:
        signatures = [_signature("float32"), _signature("float64")]
        options = {"error_model": "numpy", "boundscheck": False, "nogil": True}
        return numba.njit(signatures, cache=cache, **options)(_adam_update)

    try:
        return compiled(cache=True)
    # No writable cache directory anywhere (RuntimeError), or a cache this code cannot load: one
    # written when this module had another name (ImportError, as before hpsearch.worker), or by
    # another numba. Either costs a compile for this process, never the trial.
    except Exception:
        return compiled(cache=False)


def _register_without_blas() -> None:
    """Import numba's NumPy registry (which any kernel's compile or load imports) without its
    BLAS check: that check imports SciPy's linear algebra, and through it NumPy's f2py, about a
    quarter of a second of every process's first kernel for no kernel here (they use no BLAS;
    numba's np.dot and np.linalg still find it when a kernel calls them). Skipped when SciPy's
    BLAS is loaded already (then the check is free) or when this numba has no such check."""
    import sys

    from numba.np import linalg

    if "numba.np.arraymath" in sys.modules or "scipy.linalg.cython_blas" in sys.modules:
        return
    check = getattr(linalg, "ensure_blas", None)
    if check is None:
        return

    def no_blas() -> None:
        raise ImportError("not checked: no kernel here uses BLAS")

    linalg.ensure_blas = no_blas  # read once, by numba.np.arraymath as it imports
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        linalg.ensure_blas = check


def load() -> None:
    """Compile (or load from the disk cache) every kernel now, before any trial's clock runs."""
    adam_update()
