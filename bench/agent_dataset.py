"""An uploaded dataset served to an agent: MB/s through the route, and the agent's cache hit.

A real `hpsearch serve` of this checkout (SQLite in a temporary folder, or PostgreSQL with
--postgres, a throw-away cluster from tests/servers.py) gets an NPZ upload of about `--mb`
megabytes (float64, within the default cell limit) and a study of one trial. The trial is
leased over REST, then the dataset is fetched `--repeat` times through
`GET /studies/{id}/trials/{n}/datasets/{dataset}` (the bytes streamed from the database a
part at a time), timed on the client's wall clock; then read twice through the agent's
`context.dataset`, the first a fetch and the second from its in-memory cache.

    .venv/bin/python bench/agent_dataset.py [--mb 45] [--repeat 5] [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpsearch.agent import _AgentContext  # noqa: E402
from hpsearch.client import Client  # noqa: E402
from tests.browser.support import serve  # noqa: E402
from tests.conftest import tiny_study  # noqa: E402
from tests.servers import PostgresServer  # noqa: E402


@contextlib.contextmanager
def database(folder: Path, postgres: bool) -> Iterator[str]:
    if not postgres:
        yield f"sqlite:///{folder / 'hpsearch.db'}"
        return
    with PostgresServer(log_dir=folder) as server:
        yield server.url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=45)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    rows = int(args.mb * 2**20 / 8 / 8)
    with tempfile.TemporaryDirectory() as tmp, database(Path(tmp), args.postgres) as url:
        folder = Path(tmp)
        rng = np.random.default_rng(0)
        np.savez(folder / "big.npz", X=rng.normal(size=(rows, 7)), y=rng.normal(size=rows))
        size = (folder / "big.npz").stat().st_size
        process, base, token = serve(folder, url)
        try:
            with Client(base, token) as client:
                dataset_id = client.upload_dataset(folder / "big.npz")["id"]
                study = client.create_study(tiny_study(budget={"trials": 1, "parallelism": 1}))
                lease = client.lease(study["id"], "bench:1")
                assert lease is not None
                seconds = []
                for _ in range(args.repeat):
                    client.report(lease["study_id"], 0, "bench:1", [])  # renews the lease
                    started = time.perf_counter()
                    _, content = client.trial_dataset(lease["study_id"], 0, "bench:1", dataset_id)
                    seconds.append(time.perf_counter() - started)
                    assert len(content) == size
                with np.load(io.BytesIO(content), allow_pickle=False) as loaded:
                    assert loaded["X"].shape == (rows, 7)
                context = _AgentContext(client, lease, "bench:1")
                timed = []
                for _ in range(2):
                    started = time.perf_counter()
                    context.dataset(str(dataset_id))
                    timed.append(time.perf_counter() - started)
        finally:
            process.stop()
    best, median = min(seconds), statistics.median(seconds)
    print(f"database: {'postgresql' if args.postgres else 'sqlite'}; dataset {size / 1e6:.1f} MB")
    print(
        f"route: median {median:.3f} s ({size / 1e6 / median:.0f} MB/s), best {best:.3f} s"
        f" ({size / 1e6 / best:.0f} MB/s) over {args.repeat} fetches"
    )
    first, cached = timed[0], timed[1] * 1e6
    print(f"context.dataset: first {first:.3f} s (a fetch), then {cached:.1f} µs (cached)")


if __name__ == "__main__":
    main()
