"""Adam's compiled kernel survives a numba cache it cannot load: one written when the same
file was imported under another module name (before the installed layout became
``hpsearch.worker``), as a developer's checkout keeps it across the upgrade."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT

KERNELS = ROOT / "worker/engine/kernels.py"

# Imports kernels.py from `folder` as module NAME.kernels, then runs one Adam step through it
# and prints w[0] after it.
LOAD_AND_STEP = """
import importlib.util, sys, types
import numpy as np
folder, name = sys.argv[1], sys.argv[2]
sys.modules[name] = types.ModuleType(name)
spec = importlib.util.spec_from_file_location(f"{name}.kernels", f"{folder}/kernels.py")
kernels = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = kernels
spec.loader.exec_module(kernels)
w, g = np.array([1.0]), np.array([0.5])
m, v = np.zeros(1), np.zeros(1)
kernels.adam_update()(w, g, m, v, 0.0, 1.0, 0.9, 0.1, 0.999, 0.001, 0.1, 1e-8)
print(repr(float(w[0])))
"""


def step_as(folder: Path, name: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOAD_AND_STEP), str(folder), name],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_cache_left_by_the_same_file_under_another_module_name_is_compiled_past(
    tmp_path: Path,
) -> None:
    shutil.copy(KERNELS, tmp_path / "kernels.py")
    first = step_as(tmp_path, "old_layout")  # compiles and writes the cache
    assert list((tmp_path / "__pycache__").glob("kernels._adam_update*.nbi"))
    # The cache's pickled environment names old_layout.kernels, which no longer imports.
    again = step_as(tmp_path, "new_layout")
    # m = 0.05, v = 0.00025: w = 1 - 0.1 * 0.05 / (sqrt(0.00025) + 1e-8) = 1 - 0.316...
    expected = 1 - 0.1 * 0.05 / (0.00025**0.5 + 1e-8)
    assert float(first) == float(again)
    assert abs(float(again) - expected) < 1e-12


# Loads the kernels as a trial process does, then has numba compile a np.dot of its own.
WITHOUT_SCIPY = """
import sys
import numba
import numpy as np
from hpsearch.worker.engine import kernels
kernels.load()
loaded = sorted(m for m in ("scipy.linalg", "numpy.f2py") if m in sys.modules)
dot = numba.njit(lambda a, b: np.dot(a, b))
print(loaded, float(dot(np.ones(3), np.full(3, 2.0))), "scipy.linalg" in sys.modules)
"""


def test_loading_the_kernels_imports_no_scipy_and_numba_still_finds_blas_when_needed() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_SCIPY], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    # numba's BLAS check had imported SciPy's linear algebra and NumPy's f2py (0.25 s).
    assert done.stdout.split() == ["[]", "6.0", "True"]
