"""The schema check every process makes as it starts: a query when the database is at the newest
revision (Alembic not even imported), Alembic's upgrade when it is not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

from hpsearch.db.migrate import _head, alembic_config, at_head, upgrade
from tests.conftest import ROOT

CHECK = (
    "import sys; from hpsearch.db.migrate import upgrade; upgrade(sys.argv[1]); "
    "print('alembic' in sys.modules)"
)


def version(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        versions = list(found)
    engine.dispose()
    return versions


def test_a_current_schema_is_checked_without_alembic_and_an_old_one_upgraded(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'check.db'}"
    assert not at_head(url)  # empty: no version table yet
    upgrade(url)
    assert at_head(url) and version(url) == [_head()]
    checked = subprocess.run(
        [sys.executable, "-c", CHECK, url], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "False"

    command.downgrade(alembic_config(url), "-1")
    assert not at_head(url)
    upgrade(url)
    assert version(url) == [_head()]
