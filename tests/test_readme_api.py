"""The README's table of the REST API names exactly the routes the app serves: a route it
documents that does not exist (a 405 to a reader who tries it) or a route it leaves out fails
here, so the table cannot drift from the code again."""

from __future__ import annotations

import re
from pathlib import Path

from hpsearch.api.main import create_app

README = Path(__file__).resolve().parents[1] / "README.md"
HEADER = "| method and path | what it does |"
METHODS = "GET|POST|PUT|PATCH|DELETE"
# `GET /api/v1/x`, `GET`/`DELETE /api/v1/x/{id}` (backticks taken out first).
ROUTE = re.compile(rf"\b((?:{METHODS})(?:/(?:{METHODS}))*) (/[^\s`,]*)")
# Served but not part of the documented API: the dashboard's page and its script.
UNDOCUMENTED = {("GET", "/"), ("GET", "/static/plotly.min.js")}


def _shape(path: str) -> str:
    """A path without its query or optional part, its parameters' names made `{}`."""
    path = re.split(r"[?\[]", path)[0]
    return re.sub(r"\{[^}]*\}", "{}", path)


def documented_routes(readme: str) -> set[tuple[str, str]]:
    """(method, path shape) of every route the README's API table lists."""
    lines = readme.splitlines()
    start = lines.index(HEADER) + 2  # the header, then its |---| line
    routes = set()
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cell = line.split(" | ")[0].replace("`", "")
        for methods, path in ROUTE.findall(cell):
            routes |= {(method, _shape(path)) for method in methods.split("/")}
    return routes


def served_routes() -> set[tuple[str, str]]:
    """(method, path shape) of every route the app serves."""
    paths = create_app().openapi()["paths"]
    served = {(m.upper(), _shape(p)) for p, ops in paths.items() for m in ops}
    return served | UNDOCUMENTED


def test_the_readme_documents_every_route_and_no_other() -> None:
    documented = documented_routes(README.read_text())
    assert ("GET", "/api/v1/teams/{}/members/{}") in documented
    served = served_routes() - UNDOCUMENTED
    assert documented - served == set(), "documented, but no such route"
    assert served - documented == set(), "served, but not in the README's API table"


def test_the_parser_reads_every_form_the_table_uses() -> None:
    table = "\n".join(
        [
            HEADER,
            "|---|---|",
            "| `POST /api/v1/studies[?team=T]` | x |",
            "| `GET`/`DELETE /api/v1/datasets/{id}`, `GET /api/v1/x?after=&limit=` | y |",
            "| `PUT`/`DELETE /api/v1/teams/{team}/members/{user}` `{role}` | z |",
            "",
            "| `GET /not/in/the/table` | after it |",
        ]
    )
    assert documented_routes(table) == {
        ("POST", "/api/v1/studies"),
        ("GET", "/api/v1/datasets/{}"),
        ("DELETE", "/api/v1/datasets/{}"),
        ("GET", "/api/v1/x"),
        ("PUT", "/api/v1/teams/{}/members/{}"),
        ("DELETE", "/api/v1/teams/{}/members/{}"),
    }
