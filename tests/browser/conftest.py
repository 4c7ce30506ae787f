"""A real `hpsearch serve` on a temporary SQLite database, and Debian's chromium driven by
Playwright (never a browser Playwright downloads)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.api.conftest import MakeToken, bearer, token_maker
from tests.browser import support
from tests.browser.support import CHROMIUM, CHROMIUM_ARGS

playwright_api = pytest.importorskip("playwright.sync_api")
# Playwright's `expect` waits 5 s by default, whatever the page's own timeout: too short for a
# page that polls once a second on a 2-core machine running the rest of the suite beside it.
playwright_api.expect.set_options(timeout=20_000)


@dataclass
class Server:
    """A live API: its base URL, the first-start admin's token, a way to add accounts, and its
    database (for seeding what the API cannot make quickly, e.g. 10,000 trials)."""

    base: str
    token: str
    make_token: MakeToken
    database_url: str

    def post(
        self, path: str, body: dict | None = None, token: str | None = None, **params: str
    ) -> dict:
        """POST to an /api/v1 path as `token`'s user (default: the admin)."""
        response = httpx.post(
            f"{self.base}/api/v1{path}",
            json=body,
            params=params,
            headers=bearer(token or self.token),
        )
        assert response.is_success, response.text
        return response.json()

    def get(self, path: str) -> dict:
        """GET an /api/v1 path as the admin."""
        response = httpx.get(f"{self.base}/api/v1{path}", headers=bearer(self.token))
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`hpsearch serve` of this checkout on a free port, with its own SQLite database."""
    folder = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{folder / 'hpsearch.db'}"
    process, base, token = support.serve(folder, url)
    try:
        yield Server(base, token, token_maker(url), url)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_api.Browser]:
    """Headless Debian chromium (scripts/install-system-deps.sh installs it)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: run scripts/install-system-deps.sh")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: playwright_api.Browser) -> Iterator[playwright_api.Page]:
    """A fresh tab (its own sessionStorage) with generous waits: the machine is shared. A
    script error on the page fails the test that caused it."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, errors


def sign_in(page: playwright_api.Page, server: Server, token: str | None = None) -> None:
    """Open the dashboard and sign in with `token` (default: the admin's)."""
    support.sign_in(page, server.base, token or server.token)
