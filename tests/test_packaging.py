"""What an installed hpsearch puts on a machine: one import package, `hpsearch`, and its data.

The wheel is built offline from what the Dockerfile copies into the image (so a folder the image
lacks fails here too), installed with `--no-deps` into a fresh venv, and read back: its
site-packages entries, its files, its entry points, and its modules imported from there alone.
"""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The repository's folders and the names they are installed under.
PACKAGES = {
    "hpsearch": "hpsearch",
    "api": "hpsearch/api",
    "db": "hpsearch/db",
    "search": "hpsearch/search",
    "worker": "hpsearch/worker",
}
# Server-side frameworks a user of the client never needs to load.
HEAVY = ("fastapi", "sqlalchemy", "celery", "numpy")


class Installed:
    """The built wheel and the fresh venv it was installed into."""

    def __init__(self, wheel: Path, prefix: Path, baseline: set[str]) -> None:
        #: `baseline`: the entries of the venv's site-packages before the install.
        self.wheel, self.prefix, self.baseline = wheel, prefix, baseline
        self.python = prefix / "bin" / "python"
        self.site = _site_packages(prefix)

    def run(self, code: str, cwd: Path) -> str:
        """Run `code` in the fresh venv: hpsearch from its site-packages, its dependencies from
        this venv's (on PYTHONPATH, whose .pth files, and so the editable install, are not
        read), and a working directory outside the repository."""
        result = subprocess.run(
            [str(self.python), "-c", code],
            cwd=cwd,
            env={"PYTHONPATH": sysconfig.get_path("purelib"), "HPSEARCH_DATABASE_URL": "sqlite://"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"
    _copy_what_the_image_copies(source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    _run([*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(tmp)])
    (wheel,) = tmp.glob("hpsearch-*.whl")
    prefix = tmp / "venv"
    venv.create(prefix, with_pip=False)  # this venv's pip installs into it (--python)
    baseline = {entry.name for entry in _site_packages(prefix).iterdir()}
    _run([*pip, "--python", str(prefix / "bin" / "python"), "install", "--no-deps", str(wheel)])
    return Installed(wheel, prefix, baseline)


def _site_packages(prefix: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(prefix)}))


def _copy_what_the_image_copies(target: Path) -> None:
    """The Dockerfile's `COPY` sources, as it lays them out (the image installs from them)."""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if not line.startswith("COPY "):
            continue
        *sources, destination = line.split()[1:]
        for name in sources:
            path, into = REPO / name, target / destination
            if path.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(path, into, ignore=ignore)
            else:
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into / name)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"


def _wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def _repository_files(folder: str, pattern: str = "*") -> dict[str, str]:
    """A repository folder's files matching `pattern`, by the path they must have in the
    wheel."""
    root = REPO / folder
    return {
        f"{PACKAGES[folder]}/{path.relative_to(root).as_posix()}": str(path)
        for path in root.rglob(pattern)
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_an_installed_hpsearch_claims_one_top_level_name(installed: Installed) -> None:
    added = {entry.name for entry in installed.site.iterdir()} - installed.baseline
    assert added == {"hpsearch", "hpsearch-0.1.0.dist-info"}
    (record,) = installed.site.glob("hpsearch-*.dist-info/RECORD")
    tops = {line.split(",")[0].split("/")[0] for line in record.read_text().splitlines()}
    assert {top for top in tops if top != ".."} == added  # ".." are the scripts in bin/


def test_the_wheel_holds_every_module_and_the_data_they_read(installed: Installed) -> None:
    names = _wheel_names(installed.wheel)
    expected: dict[str, str] = {}
    for folder in PACKAGES:
        expected |= _repository_files(folder, "*.py")
    expected |= _repository_files("api", "dashboard/static/*")
    expected |= _repository_files("db", "migrations/*.mako")
    expected |= _repository_files("worker", "engine/datasets/*")
    missing = sorted(set(expected) - names)
    assert not missing, f"not in the wheel: {missing}"
    for data in ("hpsearch/api/dashboard/static/index.html", "hpsearch/db/migrations/env.py"):
        assert data in names
    assert any(name.startswith("hpsearch/db/migrations/versions/0001_") for name in names)
    assert "hpsearch/worker/engine/datasets/digits.csv.gz" in names


def test_the_entry_points_name_hpsearch_modules(installed: Installed) -> None:
    (path,) = installed.site.glob("hpsearch-*.dist-info/entry_points.txt")
    entry_points = configparser.ConfigParser()
    entry_points.read_string(path.read_text())
    assert dict(entry_points["console_scripts"]) == {"hpsearch": "hpsearch.cli.main:main"}
    assert entry_points["hpsearch.trainers"]["numpy"] == (
        "hpsearch.worker.numpy_trainer:NumpyTrainer"
    )
    assert (installed.prefix / "bin" / "hpsearch").exists()


def test_every_module_imports_from_the_installed_package_alone(
    installed: Installed, tmp_path: Path
) -> None:
    # An import left in the old style, of a bare `db` or `api`, fails here: none is installed.
    modules = sorted(
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for name in _wheel_names(installed.wheel)
        if name.endswith(".py") and "/migrations/" not in name
    )
    code = (
        "import importlib, importlib.util, json\n"
        f"files = {{m: importlib.import_module(m).__file__ for m in {modules!r}}}\n"
        "found = [n for n in ('api', 'db', 'search', 'worker') if importlib.util.find_spec(n)]\n"
        "print(json.dumps({'files': files, 'found': found}))\n"
    )
    report = json.loads(installed.run(code, tmp_path))
    assert len(modules) > 50 and report["found"] == []
    outside = {m: f for m, f in report["files"].items() if not f.startswith(str(installed.site))}
    assert not outside, f"imported from elsewhere than the installed wheel: {outside}"


def test_importing_the_client_loads_no_server_framework(
    installed: Installed, tmp_path: Path
) -> None:
    code = (
        "import sys, hpsearch, hpsearch.client\n"
        f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    assert installed.run(code, tmp_path).strip() == ""
