"""An outage is logged when it begins and when it ends, never once per failed request."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from hpsearch.db.outage import Outage


def test_many_failures_from_many_threads_log_one_line_and_the_recovery_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = Outage("database", logging.getLogger("test.outage"))
    outage.succeeded()  # no outage yet: nothing to say
    with caplog.at_level(logging.WARNING), ThreadPoolExecutor(8) as pool:
        list(pool.map(outage.failed, [ConnectionRefusedError("refused\n  twice")] * 200))
    outage.succeeded()
    outage.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "database unreachable: ConnectionRefusedError: refused twice"
    assert messages[1].startswith("database reachable again after ")
    assert messages[1].endswith("(200 requests failed)")
    assert len(messages) == 2
