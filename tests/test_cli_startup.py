"""What a user waits for before a result: the commands that only talk to a server start without
the server's libraries, and a fresh run's first trial trains as fast as the others."""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, tiny_study
from tests.test_cli import HPSEARCH

# What `hpsearch run`, `serve` and `worker` need, and the commands that talk to a server do not.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "optuna",
    "numpy",
    "numba",
    "fastapi",
    "celery",
    "uvicorn",
    "pydantic_settings",  # a tenth of a second: read by the commands that need the settings
    "httpx",  # a tenth of a second: for the commands that send a request, not their help
    # A help is click's plain text: rich (with markdown_it) loads when a command prints, and
    # pydantic when typer checks a given value, neither for a help (about 0.15 s together).
    "rich",
    "markdown_it",
    "pydantic",
    "yaml",  # for the commands that read or write a study file or a preset
)
PROBE = """
import json, sys
sys.argv = ["hpsearch", *json.loads(sys.argv[1])]
from hpsearch.cli.main import main
try:
    main()
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in HEAVY)))
"""
# `import hpsearch` (a trainer plugin in a worker, the CLI) loads none of its Python API's
# modules until one is used; `from hpsearch import agent` is the function, whichever comes first.
LAZY_API = """
import hpsearch, sys
assert "hpsearch.agent" not in sys.modules and "httpx" not in sys.modules, sorted(sys.modules)
if sys.argv[1] == "module first":
    import hpsearch.agent
from hpsearch import agent
from hpsearch.agent import agent as function
assert agent is function is hpsearch.agent, (agent, function)
print("ok")
"""


# What `hpsearch run` needs not, on a new database with the built-in trainer: Alembic (the schema
# comes from the models), the server's and the Optuna adapter's libraries, PostgreSQL's dialect,
# and SciPy's linear algebra with NumPy's f2py (which numba's BLAS check loaded, 0.25 s).
NOT_FOR_RUN = (
    "alembic",
    "optuna",
    "fastapi",
    "celery",
    "uvicorn",
    "httpx",
    "sqlalchemy.dialects.postgresql",
    "scipy.linalg",
    "numpy.f2py",
)
# The run ends with os._exit after its exit handlers (`end_now`): the report is one of them.
RUN_PROBE = """
import atexit, gc, json, sys
NOT_FOR_RUN = json.loads(sys.argv[1])
def report():
    # The start-up's objects frozen out of the collector, which is on again.
    print(json.dumps({"collector": gc.isenabled(), "frozen": gc.get_freeze_count() > 100_000}))
    loaded = [n for n in NOT_FOR_RUN if any(m == n or m.startswith(n + ".") for m in sys.modules)]
    print(json.dumps(loaded))
atexit.register(report)
sys.argv = ["hpsearch", "run", *sys.argv[2:]]
from hpsearch.cli.main import main
main()
"""


def test_hpsearch_run_loads_none_of_the_libraries_it_does_not_use_and_freezes_its_start(
    tmp_path: Path,
) -> None:
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(tiny_study(budget={"trials": 2})))
    done = subprocess.run(
        [sys.executable, "-c", RUN_PROBE, json.dumps(NOT_FOR_RUN), "study.yaml", "--db",
         f"sqlite:///{tmp_path / 'new.db'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "study 1 finished: 2 complete" in done.stdout
    *_, collector, loaded = done.stdout.splitlines()
    assert json.loads(collector) == {"collector": True, "frozen": True}
    assert json.loads(loaded) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["status", "--help"],
        ["trials", "--help"],
        ["studies", "list", "--help"],
        ["presets", "show", "--help"],
        ["admin", "--help"],
    ],
)
def test_a_command_that_talks_to_a_server_loads_none_of_the_servers_libraries(
    argv: list[str],
) -> None:
    probe = f"HEAVY = {HEAVY!r}\n{PROBE}"
    done = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(argv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout
    assert json.loads(done.stdout.splitlines()[-1]) == []


@pytest.mark.parametrize(
    ("argv", "sentence"),
    [
        (["--help"], "run Run a study to its end on this machine (SQLite + local process pool),"),
        (["studies", "--help"], "cancel Stop a running study: no more trials are queued,"),
    ],
)
def test_a_groups_help_lists_each_command_with_its_first_sentence_whole(
    argv: list[str], sentence: str
) -> None:
    done = subprocess.run([HPSEARCH, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    shown = " ".join(done.stdout.split())  # as wrapped to any terminal's width
    assert sentence in shown, done.stdout
    assert "..." not in shown.split("Commands:")[1]  # no description cut short


@pytest.mark.parametrize("order", ["function first", "module first"])
def test_the_python_api_loads_on_first_use_and_agent_stays_the_function(order: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LAZY_API, order],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_first_trial_of_a_fresh_run_trains_as_fast_as_the_others(tmp_path: Path) -> None:
    # The same Adam training six times on one process: only the seed differs.
    study = tiny_study(
        dataset={"name": "digits"},
        model={"type": "mlp", "hidden": [32]},
        training={"optimizer": "adam", "learning_rate": 0.01, "epochs": 40, "batch_size": 64},
        space={"training.seed": {"type": "categorical", "choices": [0, 1, 2, 3, 4, 5]}},
        strategy={"type": "grid"},
        budget={"trials": 6, "parallelism": 1},
    )
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    # An empty numba cache: the kernels compile in this run, as on a first install.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSEARCH_")}
    done = subprocess.run(
        [HPSEARCH, "run", "study.yaml"],
        cwd=tmp_path,
        env=env | {"NUMBA_CACHE_DIR": str(tmp_path / "numba")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(tmp_path / "hpsearch.db") as db:
        rows = db.execute('SELECT "values" FROM trials ORDER BY started_at').fetchall()
    seconds = [json.loads(values)["train_seconds"] for (values,) in rows]
    assert len(seconds) == 6
    # Generous: a compile in the first trial made it about 100 times the others.
    assert seconds[0] < 5 * statistics.median(seconds[1:]), seconds
