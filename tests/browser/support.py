"""What the browser tests and scripts/screenshots.py share, without pytest: `hpsearch serve` of
this checkout on a temporary SQLite database, Debian's chromium, and signing in."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tests.servers import ManagedProcess, free_port

if TYPE_CHECKING:  # imported when used, so that conftest can skip when Playwright is missing
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags chromium's own connections are refused in the
# sandboxed test machines, and it may stall on them.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]


def serve(folder: Path, database_url: str) -> tuple[ManagedProcess, str, str]:
    """Start `hpsearch serve` of this checkout on a free port, its log in `folder`; wait until it
    answers. Return the process (the caller stops it), its base URL and the admin's token,
    which the first start prints."""
    port = free_port()
    process = ManagedProcess(
        [
            sys.executable,
            "-m",
            "hpsearch.cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        log_dir=folder,
        name="api",
        env={
            "HPSEARCH_DATABASE_URL": database_url,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        },
    )
    try:
        process.wait_for_http(f"http://127.0.0.1:{port}/health")
        token = re.search(r"hps_[\w-]+", process.log_path.read_text())
        if token is None:
            raise RuntimeError(f"no admin token in the log:\n{process.describe()}")
    except BaseException:
        process.stop()
        raise
    return process, f"http://127.0.0.1:{port}", token.group(0)


def sign_in(page: Page, base: str, token: str) -> None:
    """Open the dashboard at `base` and sign in with `token`."""
    from playwright.sync_api import expect

    page.goto(base)
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    expect(page.locator("#nav")).to_be_visible()
