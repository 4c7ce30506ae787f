"""The web dashboard: static pages served by the API itself, with no build step and no CDN.

The pages are public; every piece of data they show comes from `/api/v1` with the token the
user signs in with, so serving them unauthenticated reveals nothing.
"""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
# The chart library comes bundled in the plotly package (a pinned dependency), so the dashboard
# works offline and its version moves with constraints.txt rather than with a CDN.
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at `/` and its scripts, styles and chart library under `/static`."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    # Registered before the mount below, which would otherwise answer every /static path.
    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
