"""The commands that only talk to a server start without the server's libraries: their cold start
is what a user waits for on every `hpsearch status`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# What `hpsearch run`, `serve` and `worker` need, and the commands that talk to a server do not.
HEAVY = ("sqlalchemy", "alembic", "optuna", "numpy", "numba", "fastapi", "celery", "uvicorn")
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


@pytest.mark.parametrize(
    "argv", [["--help"], ["status", "--help"], ["trials", "--help"], ["studies", "list", "--help"]]
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
