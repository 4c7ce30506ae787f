"""Workers load a stored upload through the same checks as the API: the limits hold there too
(a dataset stored under a larger limit, or written to the database by other means)."""

from __future__ import annotations

import pytest

from db import datasets, queries
from db.migrate import upgrade
from db.session import session_scope
from db.settings import get_settings
from tests.api.conftest import table_csv
from worker import runner
from worker.engine import ConfigError
from worker.engine.config import DatasetConfig


def test_a_worker_refuses_a_stored_dataset_over_the_cell_limit(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(sqlite_url)
    content = table_csv(30)  # 30 rows × 4 columns
    with session_scope(sqlite_url) as session:
        dataset, _ = datasets.store(
            session,
            team_id=queries.ensure_team(session),
            name="t.csv",
            format="csv",
            content=content,
            summary={},
            created_by=None,
        )
    config = DatasetConfig(name=str(dataset.id), target="label")
    monkeypatch.setenv("HPSEARCH_MAX_DATASET_CELLS", "119")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="30 rows × 4 columns, over the limit of 119 cells"):
        runner._splits(config, sqlite_url)
    monkeypatch.setenv("HPSEARCH_MAX_DATASET_CELLS", "120")
    get_settings.cache_clear()
    assert runner._splits(config, sqlite_url).n_features > 0
